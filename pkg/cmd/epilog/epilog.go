// Package epilog is the hidden `ferry epilog`, run by slurmd as root after
// every job on a worker.
package epilog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
	sb "github.com/ferry-hpc/ferry/pkg/sandbox"
	"github.com/ferry-hpc/ferry/pkg/sandbox/docker"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// NewCmdEpilog builds `ferry epilog`.
func NewCmdEpilog(f *factory.Factory) *cobra.Command {
	return &cobra.Command{
		Use:    "epilog",
		Short:  "Slurm Epilog: remove a finished job's containers (runs as root)",
		Hidden: true,
		Long: `Run by slurmd as root after each job (Epilog= in slurm.conf). It asks the
worker's agent to remove every container labelled with the job's Slurm id,
and does it itself through the Docker API when the agent is down: a batch
script killed with SIGKILL cannot clean up after itself. When the job left
no result.json, it writes one (owned by the user) saying what happened.
It always exits 0, so that a cleanup problem never drains the node.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := run(cmd.Context(), f); err != nil {
				fmt.Fprintf(f.IO.ErrOut, "ferry epilog: %v\n", err)
			}
			return nil
		},
	}
}

func run(ctx context.Context, f *factory.Factory) error {
	sid := os.Getenv("SLURM_JOB_ID")
	if sid == "" {
		return errors.New("SLURM_JOB_ID is not set: ferry epilog runs as slurmd's Epilog")
	}
	node := os.Getenv("SLURMD_NODENAME")
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	// Read what Slurm knows before anything else: the job is still
	// COMPLETING while the epilog runs.
	alloc, allocErr := f.Slurm().Allocation(ctx, sid)

	removed, err := (&sb.AgentClient{Socket: cfg.AgentSocketFor(node)}).Cleanup(ctx, sid)
	if err != nil {
		fmt.Fprintf(f.IO.ErrOut, "ferry epilog: agent: %v; removing job %s's containers directly\n", err, sid)
		eng, derr := docker.New()
		if derr != nil {
			return derr
		}
		defer eng.Close()
		if removed, err = sb.RemoveJobContainers(ctx, eng, node, sid); err != nil {
			return err
		}
	}
	if removed > 0 {
		fmt.Fprintf(f.IO.ErrOut, "ferry epilog: removed %d container(s) of Slurm job %s\n", removed, sid)
	}
	if allocErr != nil {
		return fmt.Errorf("look up Slurm job %s: %w", sid, allocErr)
	}
	return backfillResult(alloc, node, removed)
}

// backfillResult writes result.json for a ferry job that ended without one
// (its sandbox process was killed, or never started). It writes only into
// a job dir that is the job owner's own, as that owner.
func backfillResult(a slurm.Allocation, node string, removed int) error {
	rest, ok := strings.CutPrefix(a.Comment, "ferry:")
	if !ok || a.WorkDir == "" {
		return nil // not a ferry job
	}
	id, err := job.ParseID(rest)
	if err != nil {
		return nil
	}
	home, err := sb.HomeOf(a.UID)
	if err != nil {
		return err
	}
	jobDir := a.WorkDir
	if a.ArrayTask >= 0 { // a sweep task: its job dir is listed in the sweep's record
		if jobDir, id, err = sweepTask(a, home, id); err != nil {
			return err
		}
	}
	dir, err := sb.CheckJobDir(jobDir, home, a.UID, id)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if fi, err := root.Stat("."); err != nil || int(fi.Sys().(*syscall.Stat_t).Uid) != a.UID {
		return fmt.Errorf("job dir %s changed owner", dir)
	}
	if _, err := root.Lstat(job.ResultFile); !errors.Is(err, fs.ErrNotExist) {
		return nil // the sandbox recorded the end itself
	}
	reason := "the job's sandbox process was killed before it could record how the job ended"
	if removed > 0 {
		reason += "; the epilog removed its container"
	}
	if _, err := root.Lstat(job.LogFile); errors.Is(err, fs.ErrNotExist) {
		reason = "the job ended before its sandbox started: see slurm.out ('ferry logs --slurm')"
	}
	st := job.Failed
	if a.State == "CANCELLED" {
		st = job.Cancelled
	}
	res := job.Result{State: st, Reason: reason, ExitCode: -1, Node: node, SlurmJobID: a.ID, Ended: time.Now().UTC(), WrittenBy: "epilog"}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	tmp := ".result.json.epilog-" + strconv.Itoa(os.Getpid())
	fh, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := fh.Chown(a.UID, -1); err != nil {
		fh.Close()
		_ = root.Remove(tmp)
		return err
	}
	_, werr := fh.Write(append(data, '\n'))
	serr := fh.Sync()
	cerr := fh.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = root.Remove(tmp)
		return err
	}
	return root.Rename(tmp, job.ResultFile)
}

// sweepTask finds an array task's job dir from sweep.json in the sweep dir
// (the array's work dir), after checking that dir is the user's own.
func sweepTask(a slurm.Allocation, home string, sweepID job.ID) (string, job.ID, error) {
	dir, err := sb.CheckJobDir(a.WorkDir, home, a.UID, sweepID)
	if err != nil {
		return "", "", err
	}
	sw, err := submit.ReadSweep(dir)
	if err != nil {
		return "", "", err
	}
	for _, arr := range sw.Arrays {
		if arr.SlurmID == a.ArrayJobID {
			i := arr.First + a.ArrayTask
			if i >= 0 && i < len(sw.Tasks) && i <= arr.Last {
				return sw.Tasks[i].Dir, sw.Tasks[i].ID, nil
			}
		}
	}
	return "", "", fmt.Errorf("sweep %s has no task for array %s_%d", sweepID, a.ArrayJobID, a.ArrayTask)
}
