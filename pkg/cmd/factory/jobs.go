package factory

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// Observer returns an Observer for the calling user's spool.
func (f *Factory) Observer() (*observe.Observer, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	return &observe.Observer{Spool: job.Spool{Root: cfg.SpoolRoot}, Slurm: f.Slurm(), User: u.Username, Now: f.Now}, nil
}

// Resolve finds the caller's job dir for ref (ferry id, unique prefix or
// Slurm id). When ref is a Slurm id of someone else's job, it says so.
func (f *Factory) Resolve(ctx context.Context, ref string) (job.Dir, error) {
	obs, err := f.Observer()
	if err != nil {
		return "", err
	}
	d, err := obs.Spool.Resolve(ref)
	if err == nil {
		return d, nil
	}
	if _, perr := strconv.Atoi(ref); perr == nil {
		if jobs, qerr := f.Slurm().Jobs(ctx, slurm.Query{JobIDs: []string{ref}}); qerr == nil && len(jobs) > 0 {
			me, _ := user.Current()
			if me != nil && jobs[0].User != me.Username {
				return "", fmt.Errorf("Slurm job %s belongs to %s, not to you: %w", ref, jobs[0].User, job.ErrNotFound)
			}
			return "", fmt.Errorf("Slurm job %s is not a ferry job in your spool: %w", ref, job.ErrNotFound)
		}
	}
	return "", err
}

// EachJob resolves every ref to one of the caller's jobs, observes it and
// calls fn; the errors of all refs are joined, so one bad id does not stop
// the others. fallback, when set, gets a ref that names no job first, and
// reports whether it handled it (a sweep id, say).
func (f *Factory) EachJob(ctx context.Context, refs []string, fallback func(ref string) (bool, error), fn func(job.Dir, job.Status) error) error {
	obs, err := f.Observer()
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		d, err := f.Resolve(ctx, ref)
		if err != nil && fallback != nil && errors.Is(err, job.ErrNotFound) {
			if done, ferr := fallback(ref); done {
				errs = append(errs, ferr)
				continue
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st, err := obs.Status(ctx, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, fn(d, st))
	}
	return errors.Join(errs...)
}
