package sandbox

import (
	"context"
	"io"

	"github.com/ferry-hpc/ferry/pkg/env"
)

// Request is what `ferry sandbox run` asks the agent for. It names the job
// and what the user chose; everything that grants power (the user, the
// mounts, CPUs, memory, GPUs, capabilities) the agent decides itself from the
// kernel's peer credentials, Slurm and the cluster config. The fields under
// "never granted" exist so that a hand-made request asking for them is
// refused with a reason instead of being silently ignored.
type Request struct {
	SlurmJobID string            `json:"slurm_job_id"`
	JobDir     string            `json:"job_dir"`
	Scratch    string            `json:"scratch"`
	Image      string            `json:"image"`
	Command    []string          `json:"command"`
	Env        map[string]string `json:"env,omitempty"`
	Network    string            `json:"network,omitempty"`
	// Environment is what the job's image gains (pip requirements, Debian
	// packages): the agent builds it FROM Image, once per content hash on
	// this node, and runs the job in the result. nil: Image as it is.
	Environment *env.Spec `json:"environment,omitempty"`

	// never granted
	Mounts     []Mount  `json:"mounts,omitempty"`
	Privileged bool     `json:"privileged,omitempty"`
	CapAdd     []string `json:"cap_add,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Launcher runs one job's container to its end and streams its output to
// out. When ctx is cancelled it stops the container (grace, then kill),
// removes it, and returns an Exit with Stopped set.
type Launcher interface {
	Launch(ctx context.Context, req Request, out io.Writer) (Exit, error)
}
