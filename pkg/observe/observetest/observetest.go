package observetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// Me is the user the tests run as: the one ferry's factory observes.
func Me(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}

// Call is one command the fake Slurm ran.
type Call struct {
	Name string
	Args []string
}

// Slurm is a fake slurmctld reached through squeue, sshare and scancel.
// squeue lists Jobs (filtered by -u and -j as squeue filters them; with
// -t PENDING, every pending job's place); sshare reports Shares; scancel
// cancels the listed jobs (a whole array by its id), only those still
// PENDING with --state=PENDING, and refuses another user's job.
type Slurm struct {
	// User is who runs the commands; scancel refuses others' jobs.
	User string
	// OnRun, when set, runs before the n-th run (from 1) of the command
	// name answers: a test changes jobs or files there, e.g. ends a job.
	OnRun func(name string, n int)
	// Shares is what sshare reports, by user (none: no accounting).
	Shares map[string]slurm.Share

	mu    sync.Mutex
	jobs  []slurm.Job
	calls []Call
	runs  map[string]int
	errs  map[string]error
}

// NewSlurm returns a fake Slurm run by the test's user, listing jobs.
func NewSlurm(t testing.TB, jobs ...slurm.Job) *Slurm {
	return &Slurm{User: Me(t), jobs: jobs}
}

// Client is a Slurm client that runs its commands on s.
func (s *Slurm) Client() *slurm.Client { return &slurm.Client{Runner: s} }

// Set replaces the jobs Slurm knows.
func (s *Slurm) Set(jobs ...slurm.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = slices.Clone(jobs)
}

// Jobs returns what Slurm knows now.
func (s *Slurm) Jobs() []slurm.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.jobs)
}

// State returns the raw state of the job (or task) with Slurm id id, or "".
func (s *Slurm) State(id string) string {
	for _, j := range s.Jobs() {
		if j.ID == id {
			return j.State
		}
	}
	return ""
}

// Fail makes every later run of the command name fail with err.
func (s *Slurm) Fail(name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errs == nil {
		s.errs = map[string]error{}
	}
	s.errs[name] = err
}

// Calls returns the commands run so far named name ("" = all).
func (s *Slurm) Calls(name string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if name == "" || c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Run implements slurm.Runner.
func (s *Slurm) Run(_ context.Context, _ []string, name string, args ...string) ([]byte, error) {
	s.mu.Lock()
	s.calls = append(s.calls, Call{Name: name, Args: slices.Clone(args)})
	err := s.errs[name]
	if s.runs == nil {
		s.runs = map[string]int{}
	}
	s.runs[name]++
	n, hook := s.runs[name], s.OnRun
	s.mu.Unlock()
	if hook != nil {
		hook(name, n)
	}
	if err != nil {
		return nil, err
	}
	switch name {
	case "squeue":
		if slices.Contains(args, "PENDING") {
			return s.pending(), nil
		}
		return s.squeue(args), nil
	case "sshare":
		s.mu.Lock()
		defer s.mu.Unlock()
		return slurm.FormatShares(s.Shares), nil
	case "scancel":
		return nil, s.scancel(args)
	}
	return nil, fmt.Errorf("fake Slurm: no %s", name)
}

// pending is the listing of every pending job (Slurm.Pending).
func (s *Slurm) pending() []byte {
	var out []slurm.Pending
	for _, j := range s.Jobs() {
		if j.State == "PENDING" {
			out = append(out, slurm.Pending{ID: j.ID, Priority: j.Priority, Partition: j.Partition})
		}
	}
	return slurm.FormatPending(out)
}

func (s *Slurm) squeue(args []string) []byte {
	var users, ids []string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-u":
			users = strings.Split(args[i+1], ",")
		case "-j":
			ids = strings.Split(args[i+1], ",")
		}
	}
	var out []slurm.Job
	for _, j := range s.Jobs() {
		if (users == nil || slices.Contains(users, j.User)) && (ids == nil || slices.Contains(ids, j.ID) || slices.Contains(ids, j.ArrayJobID)) {
			out = append(out, j)
		}
	}
	return slurm.FormatJobs(out)
}

func (s *Slurm) scancel(args []string) error {
	pendingOnly := false
	var ids []string
	for _, a := range args {
		switch {
		case a == "--state=PENDING":
			pendingOnly = true
		case strings.HasPrefix(a, "-"):
		default:
			ids = append(ids, a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		for i, j := range s.jobs {
			if j.ID != id && (j.ArrayTaskID < 0 || j.ArrayJobID != id) {
				continue
			}
			if j.User != s.User {
				return &slurm.CmdError{Args: append([]string{"scancel"}, args...), ExitCode: 1,
					Stderr: fmt.Sprintf("scancel: error: Kill job error on job id %s: Access/permission denied\n", id)}
			}
			if pendingOnly && j.State != "PENDING" {
				continue
			}
			if j.State == "PENDING" || j.State == "RUNNING" {
				s.jobs[i].State = "CANCELLED"
			}
		}
	}
	return nil
}

// Job is a plain ferry job as squeue lists it, owned by user.
func Job(user, slurmID string, id job.ID, state string) slurm.Job {
	j := slurm.Job{ID: slurmID, ArrayJobID: slurmID, ArrayTaskID: -1, UID: -1, State: state, User: user,
		Name: "ferry/p", Comment: "ferry:" + string(id)}
	if state != "PENDING" {
		j.Nodes = "w1"
	}
	return j
}

var lastSubmitted struct {
	sync.Mutex
	t time.Time
}

// nextSubmitted is now, at least a millisecond after the last job WriteJob
// made: ids made in the same millisecond share their first 10 characters
// (job.ID.Short), and tests name jobs by that.
func nextSubmitted() time.Time {
	lastSubmitted.Lock()
	defer lastSubmitted.Unlock()
	now := time.Now()
	if earliest := lastSubmitted.t.Add(time.Millisecond); now.Before(earliest) {
		now = earliest
	}
	lastSubmitted.t = now
	return now
}

// WriteJob writes a job dir under root as submit leaves it: spec.json, and
// slurm_id unless slurmID is "". Empty ID, Dir, User, Submitted, Project,
// Command and Image are filled in.
func WriteJob(t testing.TB, root string, spec job.Spec, slurmID string) job.Dir {
	t.Helper()
	if spec.Submitted.IsZero() {
		spec.Submitted = nextSubmitted()
	}
	if spec.ID == "" {
		spec.ID = job.NewID(spec.Submitted)
	}
	d := job.DirFor(root, spec.ID)
	spec.Dir = d.Path()
	if spec.User == "" {
		spec.User = Me(t)
	}
	if spec.Project == "" {
		spec.Project = "p"
	}
	if spec.Command == nil {
		spec.Command = []string{"python3", "main.py"}
	}
	if spec.Image == "" {
		spec.Image = "ferry/sandbox:latest"
	}
	require.NoError(t, os.MkdirAll(d.Outputs(), 0o700))
	data, err := json.Marshal(spec)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(d.Spec(), data, 0o600))
	if slurmID != "" {
		require.NoError(t, os.WriteFile(d.SlurmID(), []byte(slurmID+"\n"), 0o600))
	}
	return d
}

// WriteResult writes result.json as the sandbox does when a job ends.
func WriteResult(t testing.TB, d job.Dir, st job.State, code int) {
	t.Helper()
	now := time.Now()
	require.NoError(t, job.WriteResult(d, &job.Result{
		State: st, Reason: fmt.Sprintf("exited with code %d", code), ExitCode: code, Node: "w1",
		Started: now.Add(-time.Second), Ended: now, WrittenBy: "sandbox",
	}))
}

// AppendLog appends s to the job's log, as the sandbox streams it.
func AppendLog(t testing.TB, d job.Dir, s string) {
	t.Helper()
	f, err := os.OpenFile(d.Log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}
