package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ferry-hpc/ferry/pkg/atomicfile"
	"github.com/ferry-hpc/ferry/pkg/job"
)

// RunOptions is what `ferry sandbox run` needs on the worker.
type RunOptions struct {
	JobDir      job.Dir
	SlurmJobID  string
	Node        string
	ScratchRoot string
	Launcher    Launcher
	// Unpack extracts the bundle into dest, refusing entries that escape it.
	Unpack func(ctx context.Context, r io.Reader, dest string) error
	Now    func() time.Time
	// Began is when the batch script started (job.sbatch records it in
	// FERRY_BATCH_START); zero = when Run starts.
	Began time.Time
	// StopWait bounds the wait for Slurm's SIGTERM after the agent refused
	// a job Slurm is ending; 0 means DefaultStopWait.
	StopWait time.Duration
}

// Run runs one job in its sandbox and records how it ended in result.json.
// It returns the result it wrote. A cancelled ctx (SIGTERM from scancel or
// the time limit) stops the container and records cancelled or timeout.
func Run(ctx context.Context, o RunOptions) (*job.Result, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	began := o.Began
	if began.IsZero() || began.After(now()) {
		began = now()
	}
	res := &job.Result{Node: o.Node, SlurmJobID: o.SlurmJobID, BatchStart: began, WrittenBy: "sandbox"}
	spec, err := job.ReadSpec(o.JobDir)
	if err != nil {
		return finish(o, res, job.Failed, fmt.Sprintf("cannot read the job's spec: %v", err), -1, now)
	}
	res.Image = spec.Image
	if spec.ID != o.JobDir.ID() {
		return finish(o, res, job.Failed, fmt.Sprintf("spec.json names job %s but the job dir is %s", spec.ID, o.JobDir.ID()), -1, now)
	}
	logf, err := os.OpenFile(o.JobDir.Log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return finish(o, res, job.Failed, fmt.Sprintf("cannot open the job's log: %v", err), -1, now)
	}
	defer logf.Close()
	// A requeued job runs again: its earlier result no longer holds.
	_ = os.Remove(o.JobDir.Result())
	if fi, err := logf.Stat(); err == nil && fi.Size() > 0 {
		fmt.Fprintf(logf, "\n--- ferry: job restarted on %s at %s ---\n", o.Node, began.UTC().Format(time.RFC3339))
	}
	if err := os.MkdirAll(o.JobDir.Outputs(), 0o700); err != nil {
		return finish(o, res, job.Failed, fmt.Sprintf("cannot create outputs dir: %v", err), -1, now)
	}

	scratch, err := prepareScratch(ctx, o, spec)
	if scratch != "" {
		defer os.RemoveAll(scratch)
	}
	if err != nil {
		if ctx.Err() != nil {
			return finish(o, res, stoppedState(spec, began, now()), stoppedReason(spec, began, now()), -1, now)
		}
		fmt.Fprintf(logf, "ferry: %v\n", err)
		return finish(o, res, job.Failed, err.Error(), -1, now)
	}
	params, err := os.ReadFile(o.JobDir.Params())
	if err != nil {
		params = []byte("{}")
	}
	env := map[string]string{}
	for k, v := range spec.Env {
		env[k] = v
	}
	env["FERRY_PARAMS"] = string(params)
	req := Request{
		SlurmJobID:  o.SlurmJobID,
		JobDir:      o.JobDir.Path(),
		Scratch:     scratch,
		Image:       spec.Image,
		Command:     spec.Command,
		Env:         env,
		Network:     spec.Network,
		Environment: spec.Environment,
	}
	exit, err := o.Launcher.Launch(ctx, req, logf)
	if err != nil && stoppedBeforeStart(ctx, err, o.StopWait) {
		st, reason := stoppedState(spec, began, now()), "cancelled before its container started"
		if st == job.Timeout {
			reason = stoppedReason(spec, began, now())
		}
		fmt.Fprintf(logf, "ferry: %s\n", reason)
		return finish(o, res, st, reason, -1, now)
	}
	if err != nil {
		var reason string
		switch {
		case IsRefusal(err):
			reason = "the worker's agent " + err.Error()
		case errors.Is(err, ErrAgentGone):
			reason = fmt.Sprintf("the ferry agent on %s went away while the job ran; its container was removed", o.Node)
		default:
			reason = err.Error()
		}
		fmt.Fprintf(logf, "ferry: %s\n", reason)
		return finish(o, res, job.Failed, reason, -1, now)
	}
	res.ImageDigest = exit.ImageDigest
	res.Environment = exit.Environment
	if !exit.Started.IsZero() {
		res.Started = exit.Started
	}
	switch {
	case exit.Stopped || ctx.Err() != nil:
		return finish(o, res, stoppedState(spec, began, now()), stoppedReason(spec, began, now()), exit.Code, now)
	case exit.OOMKilled:
		reason := "ran out of memory and was killed"
		m := spec.Resources.MemBytes // an older agent does not say
		if exit.MemoryLimit != nil {
			m = *exit.MemoryLimit
		}
		if m > 0 {
			reason = fmt.Sprintf("used more than its %s of memory and was killed", job.FormatMem(m))
		}
		return finish(o, res, job.OutOfMemory, reason, exit.Code, now)
	case exit.Code == 0:
		return finish(o, res, job.Succeeded, "exited with code 0", 0, now)
	default:
		return finish(o, res, job.Failed, fmt.Sprintf("exited with code %d", exit.Code), exit.Code, now)
	}
}

// stoppedBeforeStart tells a job that Slurm stopped (a scancel, the time
// limit) while its container was being set up from one that failed: the
// agent refuses a job Slurm no longer runs, and the SIGTERM that stops
// the batch script can arrive just after that answer, so it is waited for.
//
// Only a refusal counts: any other error may come after the container
// ran (the agent went away, the log could not be written) and is recorded
// as it is.
func stoppedBeforeStart(ctx context.Context, err error, wait time.Duration) bool {
	var r *Refusal
	if !errors.As(err, &r) {
		return false
	}
	if ctx.Err() != nil {
		return true
	}
	if !r.Ending {
		return false
	}
	if wait <= 0 {
		wait = DefaultStopWait
	}
	select {
	case <-ctx.Done():
		return true
	case <-time.After(wait):
		return false
	}
}

// DefaultStopWait is how long a job whose start the agent refused because
// Slurm is ending it waits for Slurm's SIGTERM before it records a failure.
const DefaultStopWait = 5 * time.Second

// stoppedState tells a time limit from a cancel: both arrive as SIGTERM.
func stoppedState(spec *job.Spec, began, now time.Time) job.State {
	lim := time.Duration(spec.Resources.TimeLimit) * time.Second
	if slack := min(2*time.Second, lim/10); lim > 0 && now.Sub(began) >= lim-slack {
		return job.Timeout
	}
	return job.Cancelled
}

func stoppedReason(spec *job.Spec, began, now time.Time) string {
	if stoppedState(spec, began, now) == job.Timeout {
		return "hit its time limit of " + job.FormatTime(spec.Resources.TimeLimit)
	}
	return "cancelled while running; the container was stopped and removed"
}

func prepareScratch(ctx context.Context, o RunOptions, spec *job.Spec) (string, error) {
	if fi, err := os.Stat(o.ScratchRoot); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the node's scratch dir %s is missing (the ferry agent creates it: is it running on %s?)", o.ScratchRoot, o.Node)
	}
	dir, err := os.MkdirTemp(o.ScratchRoot, string(spec.ID)+".")
	if err != nil {
		return "", fmt.Errorf("scratch dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return dir, err
	}
	// `ferry submit` renames the bundle in while sbatch runs; a job that
	// starts first waits for it.
	if err := waitForFile(ctx, o.JobDir.Bundle(), BundleWait); err != nil {
		return dir, err
	}
	f, err := os.Open(o.JobDir.Bundle())
	if err != nil {
		return dir, fmt.Errorf("open bundle: %w", err)
	}
	defer f.Close()
	if err := o.Unpack(ctx, f, dir); err != nil {
		return dir, fmt.Errorf("unpack bundle: %w", err)
	}
	params, err := os.ReadFile(o.JobDir.Params())
	if err != nil {
		params = []byte("{}\n")
	}
	if !json.Valid(params) {
		return dir, errors.New("params.json is not valid JSON")
	}
	if err := atomicfile.Write(filepath.Join(dir, "ferry_params.json"), params, 0o600); err != nil {
		return dir, err
	}
	return dir, nil
}

// BundleWait is how long a job waits for its bundle to arrive.
var BundleWait = 2 * time.Minute

func waitForFile(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the job's bundle did not arrive within %s (was the submit interrupted?)", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func finish(o RunOptions, res *job.Result, st job.State, reason string, code int, now func() time.Time) (*job.Result, error) {
	res.State, res.Reason, res.ExitCode, res.Ended = st, reason, code, now()
	if err := job.WriteResult(o.JobDir, res); err != nil {
		return res, fmt.Errorf("write result.json: %w", err)
	}
	return res, nil
}
