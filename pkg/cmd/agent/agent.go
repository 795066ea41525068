// Package agent is `ferry agent`, the root daemon on every worker.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/env"
	envdocker "github.com/ferry-hpc/ferry/pkg/env/docker"
	"github.com/ferry-hpc/ferry/pkg/job"
	sb "github.com/ferry-hpc/ferry/pkg/sandbox"
	"github.com/ferry-hpc/ferry/pkg/sandbox/docker"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// Options are agent's flags.
type Options struct {
	F      *factory.Factory
	Node   string
	Socket string
	// MountRoot is where the agent pins each run's dirs; "" =
	// /run/ferry/mnt/<node>.
	MountRoot string
	Health    bool
}

// NewCmdAgent builds `ferry agent`.
func NewCmdAgent(f *factory.Factory) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the worker's sandbox agent (root daemon; admins only)",
		Long: `Run the sandbox agent of one worker. It is the only process on the worker
that talks to the Docker Engine. Jobs ask it for their container over a
unix socket (agent_socket in the config, "%n" = the node name); the caller
is identified by the kernel (SO_PEERCRED), and every request is checked
against Slurm (the job runs here, for this caller), the image allowlist,
and the cluster's mount, network and capability rules. Every decision is
logged as a JSON line on stderr.

Docker never gets a path a user can change: before a container starts, the
agent opens the job's scratch dir and outputs dir without following any
symlink, checks that each is a directory the caller owns, and bind-mounts
what it opened under --mount-root (root-only); Docker mounts those at /work
(read-only) and /out.

When a job's connection drops (scancel, a killed batch script) the agent
stops and removes its container; however a run ends, the agent releases
its mounts and removes its scratch dir. On start and every 30 s it removes
containers that no job holds any more, and the mounts of containers that
are gone.

--health asks a running agent for its health and exits 0 when healthy.`,
		Example: "  ferry agent --node w1\n  ferry agent --node w1 --health",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Node, "node", "", "this worker's Slurm node name (default: the short hostname)")
	cmd.Flags().StringVar(&o.Socket, "socket", "", "socket path (default: agent_socket from the config)")
	cmd.Flags().StringVar(&o.MountRoot, "mount-root", "", "where each run's dirs are bind-mounted for Docker (default: "+sb.DefaultMountRootDir+"/<node>)")
	cmd.Flags().BoolVar(&o.Health, "health", false, "check a running agent's health instead of starting one")
	return cmd
}

func run(ctx context.Context, o *Options) error {
	cfg, err := o.F.Config()
	if err != nil {
		return err
	}
	node := o.Node
	if node == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		node, _, _ = strings.Cut(h, ".")
	}
	socket := o.Socket
	if socket == "" {
		socket = cfg.AgentSocketFor(node)
	}
	if o.Health {
		h, err := (&sb.AgentClient{Socket: socket}).Health(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.F.IO.Out, "node %s: ok=%v docker=%s running=%d\n", h.Node, h.OK, h.Docker, h.Running)
		if !h.OK {
			return &factory.ExitError{Code: 1, Silent: true}
		}
		return nil
	}
	if os.Geteuid() != 0 {
		return factory.Usagef("ferry agent must run as root: it alone holds the Docker socket")
	}
	mountRoot := o.MountRoot
	if mountRoot == "" {
		mountRoot = sb.DefaultMountRoot(node)
	}
	if !filepath.IsAbs(mountRoot) {
		return factory.Usagef("--mount-root %q must be an absolute path", mountRoot)
	}
	eng, err := docker.New()
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := eng.Ping(ctx); err != nil {
		return fmt.Errorf("docker engine: %w", err)
	}
	if err := os.MkdirAll(mountRoot, 0o700); err != nil {
		return fmt.Errorf("mount root: %w", err)
	}
	nsNote, err := checkDockerSeesMounts(os.Getenv("DOCKER_HOST"), mountRoot, "/proc/self/mountinfo")
	if err != nil {
		return err
	}
	ln, err := sb.Listen(socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	defer os.Remove(socket)
	log := slog.New(slog.NewJSONHandler(o.F.IO.ErrOut, nil)).With("node", node)
	log.Info("agent listening", "cluster", cfg.Cluster, "socket", socket, "images", cfg.Images, "mount_root", mountRoot)
	if nsNote != "" {
		log.Warn(nsNote)
	}
	nodeMem, err := sb.NodeMemory()
	switch reserve := int64(cfg.NodeMemReserve); {
	case err != nil:
		log.Warn("node memory unknown: a sandbox's memory is not capped below Slurm's allotment", "err", err)
	case reserve >= nodeMem:
		log.Warn("node_mem_reserve is not below the node's memory: a sandbox's memory is not capped below Slurm's allotment", "node_mem_bytes", nodeMem, "node_mem_reserve", reserve)
	default:
		log.Info("sandbox memory capped at the node's less node_mem_reserve", "node_mem_bytes", nodeMem, "node_mem_reserve", reserve, "cap_bytes", nodeMem-reserve)
	}
	a := &sb.Agent{
		Policy: &sb.Policy{
			Cluster:        cfg.Cluster,
			Node:           node,
			Images:         cfg.Images,
			Networks:       cfg.Networks,
			ReadOnlyMounts: cfg.ReadOnlyMounts,
			ScratchDir:     cfg.ScratchDir,
			Perfmon:        cfg.Perfmon,
			PidsLimit:      cfg.PidsLimit,
			TmpfsSize:      512 << 20,
			NodeMemory:     nodeMem,
			MemReserve:     int64(cfg.NodeMemReserve),
		},
		Engine:    eng,
		Binder:    &sb.MountBinder{Root: mountRoot},
		MountRoot: mountRoot,
		Slurm:     Allocations{Client: o.F.Slurm()},
		Log:       log,
		StopGrace: cfg.StopGrace.Duration(),
		Ping:      eng.Ping,
	}
	if cfg.Environments.Enabled {
		b, closeEnv, err := environments(cfg, log)
		if err != nil {
			return err
		}
		defer closeEnv()
		a.Environments = b
		go evictLoop(ctx, b, cfg.Environments, log)
	}
	err = a.Serve(ctx, ln)
	log.Info("agent stopped")
	return err
}

// environments is the node's environment builder (package env) on the
// Docker Engine, from the admin's environments section.
func environments(cfg *config.Config, log *slog.Logger) (*env.Builder, func(), error) {
	ec := cfg.Environments
	eng, err := envdocker.New()
	if err != nil {
		return nil, nil, fmt.Errorf("environments: %w", err)
	}
	b, err := env.New(eng, ec.Options())
	if err != nil {
		eng.Close()
		return nil, nil, fmt.Errorf("environments: %w", err)
	}
	log.Info("environments enabled", "state_dir", ec.StateDir, "debian_mirror", ec.DebianMirror,
		"pip_index_url", ec.PipIndexURL, "pip_find_links", ec.PipFindLinks, "max_age", ec.MaxAge.Duration().String(), "max_size", ec.MaxSize.String())
	return b, func() { eng.Close() }, nil
}

// evictLoop removes environments past the admin's age and size limits, at
// start and then daily. An image a container uses is never removed (the
// Engine refuses).
func evictLoop(ctx context.Context, b *env.Builder, ec config.Environments, log *slog.Logger) {
	if ec.MaxAge <= 0 && ec.MaxSize <= 0 {
		return
	}
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		gone, err := b.Evict(ctx, ec.MaxAge.Duration(), int64(ec.MaxSize), func(string) bool { return false })
		if err != nil && ctx.Err() == nil {
			log.Warn("evicting environments", "err", err)
		}
		for _, e := range gone {
			log.Info("environment evicted", "env", e.Key, "size", e.Size, "last_used", e.LastUsed, "why", e.Reason)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Allocations adapts the Slurm client to the agent's AllocationSource.
type Allocations struct{ Client *slurm.Client }

// Allocation implements sandbox.AllocationSource.
func (s Allocations) Allocation(ctx context.Context, id string) (sb.Allocation, error) {
	a, err := s.Client.Allocation(ctx, id)
	if err != nil {
		if errors.Is(err, slurm.ErrNoSuchJob) {
			return sb.Allocation{}, fmt.Errorf("Slurm does not know job %s", id)
		}
		return sb.Allocation{}, err
	}
	out := sb.Allocation{SlurmJobID: a.ID, UID: a.UID, State: a.State, Nodes: a.Nodes, CPUs: a.CPUs, MemBytes: a.MemBytes, GPUs: a.GPUs, Array: a.ArrayTask >= 0}
	if rest, ok := strings.CutPrefix(a.Comment, "ferry:"); ok {
		if id, err := job.ParseID(rest); err == nil {
			out.FerryID = id
		}
	}
	return out, nil
}
