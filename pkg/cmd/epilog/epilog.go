// Package epilog is the hidden `ferry epilog`, run by slurmd as root after
// every job on a worker.
package epilog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
		Short:  "Slurm Epilog: remove a finished job's containers and scratch (runs as root)",
		Hidden: true,
		Long: `Run by slurmd as root after each job (Epilog= in slurm.conf). It asks the
worker's agent to remove every container labelled with the job's Slurm id
and the job's node-local scratch dirs (<scratch_dir>/<ferry id>.*), and does
it itself when the agent is down: a batch script killed with SIGKILL cannot
clean up after itself. When the job left no result.json, it writes one
(owned by the user) saying what happened. It always exits 0, so that a
cleanup problem never drains the node.`,
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
	var fj ferryJob
	var fjErr error
	if allocErr == nil {
		fj, fjErr = lookupFerryJob(alloc, sb.HomeOf)
	}
	c := &cleaner{
		agent:       &sb.AgentClient{Socket: cfg.AgentSocketFor(node)},
		engine:      dockerEngine,
		cluster:     cfg.Cluster,
		node:        node,
		scratchRoot: cfg.ScratchDir,
		errOut:      f.IO.ErrOut,
	}
	removed, err := c.cleanup(ctx, sid, fj)
	if err != nil {
		return err
	}
	if allocErr != nil {
		return fmt.Errorf("look up Slurm job %s: %w", sid, allocErr)
	}
	if fjErr != nil {
		return fmt.Errorf("find the ferry job of Slurm job %s: %w", sid, fjErr)
	}
	if fj.id == "" {
		return nil // not a ferry job
	}
	return backfillResult(alloc, fj, node, removed)
}

func dockerEngine() (sb.Engine, func(), error) {
	eng, err := docker.New()
	if err != nil {
		return nil, nil, err
	}
	return eng, func() { eng.Close() }, nil
}

// ferryJob is what the epilog knows of the ferry job behind a Slurm job:
// its id (a sweep task's own, not the sweep's), its job dir as Slurm or
// the sweep names it, and its owner's home. The zero ferryJob is a job that
// is not ferry's.
type ferryJob struct {
	id        job.ID
	dir, home string
	uid       int
}

// lookupFerryJob finds the ferry job of a: its comment names it, or, for a
// sweep task, the sweep whose record lists the task.
func lookupFerryJob(a slurm.Allocation, homeOf func(uid int) (string, error)) (ferryJob, error) {
	rest, ok := strings.CutPrefix(a.Comment, "ferry:")
	if !ok || a.WorkDir == "" {
		return ferryJob{}, nil // not a ferry job
	}
	id, err := job.ParseID(rest)
	if err != nil {
		return ferryJob{}, nil
	}
	home, err := homeOf(a.UID)
	if err != nil {
		return ferryJob{}, err
	}
	fj := ferryJob{id: id, dir: a.WorkDir, home: home, uid: a.UID}
	if a.ArrayTask >= 0 { // a sweep task: its job dir is listed in the sweep's record
		if fj.dir, fj.id, err = sweepTask(a, home, id); err != nil {
			return ferryJob{}, err
		}
	}
	return fj, nil
}

// agentCleaner is the agent's cleanup call.
type agentCleaner interface {
	Cleanup(ctx context.Context, req sb.CleanupRequest) (sb.CleanupResult, error)
}

// cleaner removes what a finished job left on the node: through the agent,
// or, when the agent does not answer, directly (containers through the
// Docker API, scratch dirs from the file system).
type cleaner struct {
	agent       agentCleaner
	engine      func() (sb.Engine, func(), error)
	cluster     string
	node        string
	scratchRoot string
	errOut      io.Writer
}

// cleanup returns the number of containers it removed.
func (c *cleaner) cleanup(ctx context.Context, sid string, fj ferryJob) (int, error) {
	req := sb.CleanupRequest{SlurmJobID: sid, FerryID: fj.id, UID: fj.uid}
	res, err := c.agent.Cleanup(ctx, req)
	if err != nil {
		fmt.Fprintf(c.errOut, "ferry epilog: agent: %v; removing job %s's containers directly (and its scratch dirs)\n", err, sid)
		res, err = c.direct(ctx, req)
	}
	if res.Removed > 0 {
		fmt.Fprintf(c.errOut, "ferry epilog: removed %d container(s) of Slurm job %s\n", res.Removed, sid)
	}
	if len(res.Scratch) > 0 {
		fmt.Fprintf(c.errOut, "ferry epilog: removed scratch %s of job %s\n", strings.Join(res.Scratch, ", "), fj.id)
	}
	if res.ScratchError != "" {
		fmt.Fprintf(c.errOut, "ferry epilog: scratch of job %s: %s\n", fj.id, res.ScratchError)
	}
	return res.Removed, err
}

// direct is the agent's cleanup, done by the epilog itself: the
// containers first, then the scratch dirs, which go even when Docker cannot
// be reached.
func (c *cleaner) direct(ctx context.Context, req sb.CleanupRequest) (sb.CleanupResult, error) {
	var res sb.CleanupResult
	eng, closeEng, err := c.engine()
	if err == nil {
		defer closeEng()
		res.Removed, err = sb.RemoveJobContainers(ctx, eng, c.cluster, c.node, req.SlurmJobID)
	}
	if req.FerryID != "" {
		scratch, serr := sb.RemoveScratch(c.scratchRoot, req.FerryID, req.UID)
		res.Scratch = scratch
		if serr != nil {
			res.ScratchError = serr.Error()
		}
	}
	return res, err
}

// backfillResult writes result.json for a ferry job that ended without one
// (its sandbox process was killed, or never started). It writes only into
// a job dir that is the job owner's own, as that owner.
func backfillResult(a slurm.Allocation, fj ferryJob, node string, removed int) error {
	dir, err := sb.CheckJobDir(fj.dir, fj.home, a.UID, fj.id)
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
	// A cancelled job is still COMPLETING while its epilog runs, so Slurm's
	// state may not say CANCELLED yet; the user's cancel (ferry cancel
	// marks it in the job dir before scancel) does.
	st := job.Failed
	_, markErr := root.Lstat(job.CancelFile)
	switch {
	case markErr == nil:
		st = job.Cancelled
		reason = "cancelled before its sandbox could record the end"
		if _, err := root.Lstat(job.LogFile); errors.Is(err, fs.ErrNotExist) {
			reason = "cancelled before its sandbox started"
		}
	case a.State == "CANCELLED":
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
