package submit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/pkg/atomicfile"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/sweep"
)

// SweepFile is the sweep's own record, in <spool>/.sweeps/<id>/.
const SweepFile = job.SweepFile

// Sweep is what sweep.json holds: which task is which, and which Slurm
// arrays run them.
type Sweep struct {
	ID          job.ID      `json:"id"`
	Project     string      `json:"project"`
	Submitted   time.Time   `json:"submitted"`
	MaxParallel int         `json:"max_parallel,omitempty"`
	Tasks       []SweepTask `json:"tasks"`
	Arrays      []ArrayJob  `json:"arrays"`
	Dir         string      `json:"dir"`
}

// SweepTask is one task: a normal job with its own dir.
type SweepTask struct {
	Index  int            `json:"index"`
	ID     job.ID         `json:"id"`
	Dir    string         `json:"dir"`
	Params map[string]any `json:"params"`
}

// ArrayJob is one `sbatch --array` submission of a sweep.
type ArrayJob = job.SweepArray

// SweepDir is the dir of sweep id under a spool root.
func SweepDir(spool string, id job.ID) string {
	return filepath.Join(spool, job.SweepsDir, string(id))
}

// ReadSweep reads a sweep's record.
func ReadSweep(dir string) (*Sweep, error) {
	data, err := os.ReadFile(filepath.Join(dir, SweepFile))
	if err != nil {
		return nil, err
	}
	var s Sweep
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, SweepFile), err)
	}
	return &s, nil
}

// ArrayLimiter reads the cluster's MaxArraySize.
type ArrayLimiter interface {
	MaxArraySize(ctx context.Context) (int, error)
}

// SubmitSweep submits one task per parameter set, as few `sbatch --array`
// calls as MaxArraySize allows. Each task is a job with its own dir and
// params; they share one bundle (hard links). Nothing is left behind when
// Slurm refuses an array: the arrays already submitted are cancelled.
func (s *Submitter) SubmitSweep(ctx context.Context, base *job.Spec, sets []map[string]any, maxParallel int, limiter ArrayLimiter) (*Sweep, error) {
	if len(sets) == 0 {
		return nil, bad("the sweep has no tasks")
	}
	maxArray := 1001
	if limiter != nil {
		n, err := limiter.MaxArraySize(ctx)
		if err != nil {
			return nil, fmt.Errorf("ask Slurm for MaxArraySize: %w", err)
		}
		maxArray = n
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if err := s.identify(base); err != nil {
		return nil, err
	}
	base.Submitted = now().UTC()
	ids := job.NewIDs(base.Submitted, len(sets)+1)
	sw := &Sweep{ID: ids[0], Project: base.Project, Submitted: base.Submitted, MaxParallel: maxParallel}
	spool := s.Config.SpoolRoot
	sweeps := filepath.Join(spool, job.SweepsDir)
	if err := os.MkdirAll(sweeps, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", sweeps, err)
	}
	sw.Dir = SweepDir(spool, sw.ID)
	stage := filepath.Join(sweeps, ".tmp-"+string(sw.ID))
	if err := os.Mkdir(stage, 0o700); err != nil {
		return nil, err
	}
	var made []string // task dirs moved into the spool
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(stage)
			_ = os.RemoveAll(sw.Dir)
			for _, d := range made {
				_ = os.RemoveAll(d)
			}
		}
	}()
	info, err := s.pack(ctx, base.Source, filepath.Join(stage, job.BundleFile), nil)
	if err != nil {
		return nil, err
	}
	base.Bundle = job.Bundle{File: job.BundleFile, Hash: info.Hash, Size: info.Size, Bytes: info.Bytes, Files: info.Files}

	// The task dirs, staged beside their final place and renamed in, by a
	// few workers: this is thousands of small syscalls for a big sweep.
	sw.Tasks = make([]SweepTask, len(sets))
	done := make([]bool, len(sets))
	bundlePath := filepath.Join(stage, job.BundleFile)
	err = parallel(ctx, len(sets), func(i int) error {
		spec := *base
		spec.ID = ids[i+1]
		spec.Sweep = &job.SweepRef{ID: sw.ID, Index: i}
		spec.Params = maps.Clone(base.Params)
		if spec.Params == nil {
			spec.Params = map[string]any{}
		}
		maps.Copy(spec.Params, sets[i])
		final := job.DirFor(spool, spec.ID)
		spec.Dir = final.Path()
		tmp := filepath.Join(spool, ".tmp-"+string(spec.ID))
		if err := writeTaskDir(tmp, &spec, bundlePath); err != nil {
			_ = os.RemoveAll(tmp)
			return err
		}
		if err := os.Rename(tmp, final.Path()); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("commit task %d: %w", i, err)
		}
		done[i] = true
		sw.Tasks[i] = SweepTask{Index: i, ID: spec.ID, Dir: final.Path(), Params: spec.Params}
		return nil
	})
	for i := range done {
		if done[i] {
			made = append(made, sw.Tasks[i].Dir)
		}
	}
	if err != nil {
		return nil, err
	}
	arrays := sweep.Split(len(sets), maxArray)
	for _, a := range arrays {
		script, err := s.sweepScript(base, sw, a, maxParallel)
		if err != nil {
			return nil, &BadInput{Err: err}
		}
		if err := os.WriteFile(filepath.Join(stage, scriptName(a)), script, 0o700); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(stage, SweepFile), sw, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(stage, sw.Dir); err != nil {
		return nil, fmt.Errorf("commit sweep: %w", err)
	}
	// One syncfs instead of thousands of fsyncs: the spool is one filesystem.
	if err := syncfs(spool); err != nil {
		return nil, err
	}
	for _, a := range arrays {
		id, err := s.Slurm.Submit(ctx, filepath.Join(sw.Dir, scriptName(a)))
		if err != nil {
			if c, ok := s.Slurm.(interface {
				Cancel(context.Context, []string, string) error
			}); ok && len(sw.Arrays) > 0 {
				var done []string
				for _, aj := range sw.Arrays {
					done = append(done, aj.SlurmID)
				}
				_ = c.Cancel(context.WithoutCancel(ctx), done, "")
			}
			return nil, fmt.Errorf("sbatch refused sweep %s (tasks %d-%d): %w", sw.ID.Short(), a.First, a.Last, err)
		}
		sw.Arrays = append(sw.Arrays, ArrayJob{SlurmID: id, First: a.First, Last: a.Last})
	}
	ok = true
	// The sweep's record of its arrays is durable (WriteJSON); the tasks'
	// slurm_id files are hints, as for a single job, and not waited onto
	// the disk: job.SlurmIDOf falls back to the record. (A syncfs here
	// would wait for everything dirty on the filesystem.)
	errs := []error{atomicfile.WriteJSON(filepath.Join(sw.Dir, SweepFile), sw, 0o600)}
	errs = append(errs, parallel(ctx, len(sw.Tasks), func(i int) error {
		return os.WriteFile(job.Dir(sw.Tasks[i].Dir).SlurmID(), []byte(job.TaskSlurmID(sw.Arrays, i)+"\n"), 0o600)
	}))
	if err := errors.Join(errs...); err != nil {
		return sw, fmt.Errorf("sweep %s was submitted, but recording its Slurm ids failed: %w", sw.ID.Short(), err)
	}
	return sw, nil
}

// parallel calls fn for 0..n-1 on a few goroutines (the work is small
// syscalls, thousands of them for a big sweep) and joins the errors.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(2, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				errs[i] = fn(i)
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

func scriptName(a sweep.Array) string { return fmt.Sprintf("array-%d.sbatch", a.First) }

func writeTaskDir(dir string, spec *job.Spec, bundlePath string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	d := job.Dir(dir)
	if err := os.Link(bundlePath, d.Bundle()); err != nil {
		return fmt.Errorf("link bundle: %w", err)
	}
	params, err := json.Marshal(spec.Params)
	if err != nil {
		return bad("params: %v", err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.Params(), append(params, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(d.Spec(), append(specJSON, '\n'), 0o600); err != nil {
		return err
	}
	return os.Mkdir(d.Outputs(), 0o700)
}

func (s *Submitter) sweepScript(base *job.Spec, sw *Sweep, a sweep.Array, maxParallel int) ([]byte, error) {
	env := map[string]string{}
	if v := os.Getenv("FERRY_CONFIG"); v != "" {
		env["FERRY_CONFIG"] = v
	}
	return slurm.Render(slurm.Script{
		JobName:   "ferry/" + base.Project,
		Comment:   "ferry:" + string(sw.ID),
		Output:    filepath.Join(sw.Dir, fmt.Sprintf("slurm-%d-%%a.out", a.First)),
		Chdir:     sw.Dir,
		CPUs:      base.Resources.CPUs,
		MemBytes:  base.Resources.MemBytes,
		GPUs:      base.Resources.GPUs,
		TimeLimit: base.Resources.TimeLimit,
		Partition: base.Partition,
		Array:     a.Range(maxParallel),
		Ferry:     s.Ferry,
		Args:      []string{"sandbox", "run", "--sweep-dir", sw.Dir, "--first", strconv.Itoa(a.First)},
		Env:       env,
		Header: []string{
			fmt.Sprintf("ferry sweep %s, project %s, tasks %d-%d, submitted by %s at %s", sw.ID, base.Project, a.First, a.Last, base.User, base.Submitted.Format(time.RFC3339)),
			"Task i runs the job dir listed for index first+SLURM_ARRAY_TASK_ID in sweep.json beside this file.",
		},
	})
}

func syncfs(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// FindSweep finds a sweep by id or unique prefix under a spool root.
func FindSweep(spool, ref string) (string, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	ents, err := os.ReadDir(filepath.Join(spool, job.SweepsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var found []string
	for _, e := range ents {
		if _, err := job.ParseID(e.Name()); err == nil && ref != "" && strings.HasPrefix(e.Name(), ref) {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no sweep %q in %s: %w", ref, spool, job.ErrNotFound)
	case 1:
		return SweepDir(spool, job.ID(found[0])), nil
	}
	return "", fmt.Errorf("%q matches %d sweeps: give more characters: %w", ref, len(found), job.ErrAmbiguous)
}
