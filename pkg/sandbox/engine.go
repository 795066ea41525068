package sandbox

import (
	"context"
	"io"
	"time"
)

// Labels put on every sandbox container, so the agent's reconciler and the
// Slurm epilog find a job's containers without any other state.
const (
	LabelJob      = "ferry.job"
	LabelSlurmJob = "ferry.slurm_job"
	LabelUID      = "ferry.uid"
	LabelNode     = "ferry.node"
	// LabelCluster names the cluster (config: cluster): agents of two
	// clusters on one Docker Engine never touch each other's containers.
	LabelCluster = "ferry.cluster"
)

// Mount is a bind mount from the worker into the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
}

// ContainerSpec is a fully decided container: the policy has already
// checked every field. Engines apply it as given and add nothing.
type ContainerSpec struct {
	Name        string
	Hostname    string
	Image       string
	Cmd         []string
	Env         []string
	User        string // "uid:gid"
	WorkingDir  string
	Mounts      []Mount
	Network     string // "none" or an allowed named network
	NanoCPUs    int64
	MemoryBytes int64
	PidsLimit   int64
	GPUs        int
	CapAdd      []string
	TmpfsSize   int64
	Labels      map[string]string
}

// Exit is how a container ended.
type Exit struct {
	Code      int  `json:"code"`
	OOMKilled bool `json:"oom_killed"`
	Stopped   bool `json:"stopped"` // stopped by ferry (cancel, agent shutdown)
	// MemoryLimit is the container's memory limit in bytes as the agent
	// set it (0: none), for the out-of-memory reason; nil from an agent
	// older than the field.
	MemoryLimit *int64 `json:"memory_limit,omitempty"`
	ImageDigest string `json:"image_digest"`
	// Environment is the key of the environment the job ran in (its image
	// is ImageDigest); "" for the plain image.
	Environment string    `json:"environment,omitempty"`
	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended"`
}

// Container is one started container.
type Container struct {
	ID          string
	ImageDigest string
}

// ContainerInfo is what List reports of a container.
type ContainerInfo struct {
	ID      string
	Name    string // without Docker's leading "/"
	Labels  map[string]string
	Running bool
}

// Engine is the seam in front of the Docker Engine API. Only the agent (and
// the epilog's fallback) hold one.
type Engine interface {
	// Start creates the container, attaches stdout and stderr to out before
	// it starts (so no line is lost), and starts it.
	Start(ctx context.Context, spec ContainerSpec, out io.Writer) (Container, error)
	// Wait blocks until the container exits and all its output was copied.
	Wait(ctx context.Context, c Container) (Exit, error)
	// Remove stops the container (SIGTERM, then SIGKILL after grace) and
	// removes it. Removing a container that is gone is not an error.
	Remove(ctx context.Context, id string, grace time.Duration) error
	// List returns the containers that carry all the given labels.
	List(ctx context.Context, labels map[string]string) ([]ContainerInfo, error)
}
