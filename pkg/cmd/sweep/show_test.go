package sweep_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/sweep"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// newEnv returns a test env that runs `ferry sweep`.
func newEnv(t *testing.T) *cmdtest.Env {
	return cmdtest.New(t, func(f *factory.Factory) *cobra.Command { return sweep.NewCmdSweep(f, nil) })
}

// task is one task of the test sweep: its params and what it logged.
type task struct {
	params  map[string]any
	metrics []string // lines of metrics.jsonl
	state   job.State
}

// writeSweep writes a sweep as 'ferry sweep' leaves it: the sweep record
// and one job dir per task, each with its metrics.
func writeSweep(t *testing.T, e *cmdtest.Env, tasks []task) (job.ID, []job.ID) {
	t.Helper()
	at := time.Now().Add(-time.Hour)
	sw := submit.Sweep{ID: job.NewID(at), Project: "grid", Submitted: at, Dir: submit.SweepDir(e.Root, job.NewID(at))}
	sw.Dir = submit.SweepDir(e.Root, sw.ID)
	ids := job.NewIDs(at, len(tasks))
	for i, tk := range tasks {
		d := observetest.WriteJob(t, e.Root, job.Spec{ID: ids[i], Project: "grid", Submitted: at, Params: tk.params,
			Sweep: &job.SweepRef{ID: sw.ID, Index: i}}, fmt.Sprintf("300_%d", i))
		if tk.state != "" {
			observetest.WriteResult(t, d, tk.state, 0)
		}
		if tk.metrics != nil {
			require.NoError(t, os.WriteFile(d.Metrics(), []byte(strings.Join(tk.metrics, "\n")+"\n"), 0o600))
		}
		sw.Tasks = append(sw.Tasks, submit.SweepTask{Index: i, ID: ids[i], Dir: d.Path(), Params: tk.params})
	}
	sw.Arrays = []submit.ArrayJob{{SlurmID: "300", First: 0, Last: len(tasks) - 1}}
	require.NoError(t, os.MkdirAll(sw.Dir, 0o700))
	data, err := json.Marshal(sw)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sw.Dir, job.SweepFile), data, 0o600))
	return sw.ID, ids
}

func metric(name string, v any) string {
	b, _ := json.Marshal(map[string]any{"name": name, "value": v})
	return string(b)
}

var gridTasks = []task{
	{params: map[string]any{"lr": 0.1, "opt": "sgd"}, metrics: []string{metric("acc", 0.5), metric("acc", 0.71), metric("loss", 1.2)}, state: job.Succeeded},
	{params: map[string]any{"lr": 0.01, "opt": "adam\tw"}, metrics: []string{metric("acc", 0.93), metric("loss", 0.4)}, state: job.Succeeded},
	{params: map[string]any{"lr": 0.001, "opt": "\x1b[31mred"}, metrics: []string{metric("loss", 2.5)}},                                     // no acc yet
	{params: map[string]any{"lr": 0.0001, "opt": "sgd"}, metrics: []string{metric("acc", 0.88), `{"name": "acc", "val`}, state: job.Failed}, // a partial last line
	{params: map[string]any{"lr": 1e-5, "opt": "sgd"}, metrics: []string{metric("acc", "n/a")}},                                             // not a number
}

// The rows, piped, of the tasks in gridTasks, by index.
func gridRows(ids []job.ID) []string {
	return []string{
		"0\t" + string(ids[0]) + "\tsucceeded\t0.1\tsgd\t0.71\t1.2",
		"1\t" + string(ids[1]) + "\tsucceeded\t0.01\t\"adam\\tw\"\t0.93\t0.4",
		"2\t" + string(ids[2]) + "\tqueued\t0.001\t\"\\x1b[31mred\"\t-\t2.5",
		"3\t" + string(ids[3]) + "\tfailed\t0.0001\tsgd\t0.88\t-",
		"4\t" + string(ids[4]) + "\tqueued\t1e-05\tsgd\tn/a\t-",
	}
}

func TestSweepShowSort(t *testing.T) {
	e := newEnv(t)
	swID, ids := writeSweep(t, e, gridTasks)
	rows := gridRows(ids)
	me := observetest.Me(t)
	for _, i := range []int{2, 4} {
		j := observetest.Job(me, fmt.Sprintf("300_%d", i), swID, "PENDING")
		j.ArrayJobID, j.ArrayTaskID = "300", i
		e.Slurm.Set(append(e.Slurm.Jobs(), j)...)
	}

	tests := []struct {
		name       string
		args       []string
		order      []int
		wantErrOut string
	}{
		{name: "task order", order: []int{0, 1, 2, 3, 4}},
		{name: "ascending", args: []string{"--sort", "acc"}, order: []int{0, 3, 1, 2, 4}},
		{name: "descending", args: []string{"--sort=-acc"}, order: []int{1, 3, 0, 2, 4}},
		{name: "descending, other metric", args: []string{"--sort=-loss"}, order: []int{2, 0, 1, 3, 4}},
		{name: "a metric no task logged", args: []string{"--sort", "f1"}, order: []int{0, 1, 2, 3, 4},
			wantErrOut: "no task has logged a number for f1 yet: not sorted\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, 0, e.Run(t, append([]string{"show", swID.Short()}, tt.args...)...), e.ErrOut.String())
			var want string
			for _, i := range tt.order {
				want += rows[i] + "\n"
			}
			assert.Equal(t, want, e.Out.String())
			assert.Equal(t, tt.wantErrOut, e.ErrOut.String())

			require.Equal(t, 0, e.Run(t, append([]string{"show", "-o", "json", string(swID)}, tt.args...)...))
			var shown sweep.Shown
			require.NoError(t, json.Unmarshal(e.Out.Bytes(), &shown))
			var got []int
			for _, r := range shown.Tasks {
				got = append(got, r.Index)
			}
			assert.Equal(t, tt.order, got, "-o json is sorted the same")
		})
	}
}

func TestSweepShowTerminal(t *testing.T) {
	e := newEnv(t)
	e.TTY = true
	swID, ids := writeSweep(t, e, gridTasks)
	require.Equal(t, 0, e.Run(t, "show", string(swID), "--sort=-acc"))
	lines := strings.Split(strings.TrimSuffix(e.Out.String(), "\n"), "\n")
	require.Len(t, lines, 6, e.Out.String())
	assert.Equal(t, []string{"#", "ID", "STATE", "lr", "opt", "acc", "loss"}, strings.Fields(lines[0]))
	assert.NotContains(t, e.Out.String(), "\x1b")
	seen := map[string]bool{}
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		assert.False(t, seen[f[1]], "id %s shown twice: a sweep's tasks share their first 10 characters", f[1])
		seen[f[1]] = true
		d, err := job.Spool{Root: e.Root}.Resolve(f[1])
		require.NoError(t, err, "the id shown resolves")
		assert.Equal(t, ids[[]int{1, 3, 0, 2, 4}[i]], d.ID())
	}
	assert.Contains(t, lines[4], `"\x1b[31mred"`)

	require.Equal(t, 0, e.Run(t, "show", "-o", "json", string(swID)))
	var shown sweep.Shown
	require.NoError(t, json.Unmarshal(e.Out.Bytes(), &shown))
	assert.Equal(t, "\x1b[31mred", shown.Tasks[2].Params["opt"], "-o json is exact")
	assert.Equal(t, "adam\tw", shown.Tasks[1].Params["opt"])
}

func TestSweepShowUnknown(t *testing.T) {
	e := newEnv(t)
	writeSweep(t, e, gridTasks[:1])
	assert.Equal(t, factory.CodeNotFound, e.Run(t, "show", "zzzz"))
	assert.Equal(t, "ferry: no sweep \"zzzz\" among your sweeps: give the id 'ferry sweep' printed\n", e.ErrOut.String())
	assert.Empty(t, e.Out.String())
}

// A task whose job dir is missing (a crash soon after submit; the task
// rebuilds it when it starts) shows as unknown, and says why.
func TestSweepShowMissingTaskDir(t *testing.T) {
	e := newEnv(t)
	swID, ids := writeSweep(t, e, gridTasks[:3])
	require.NoError(t, os.RemoveAll(job.DirFor(e.Root, ids[1]).Path()))
	require.Equal(t, 0, e.Run(t, "show", "-o", "json", string(swID)), e.ErrOut.String())
	var shown sweep.Shown
	require.NoError(t, json.Unmarshal(e.Out.Bytes(), &shown))
	require.Len(t, shown.Tasks, 3)
	assert.Equal(t, job.Succeeded, shown.Tasks[0].State)
	assert.Equal(t, job.Unknown, shown.Tasks[1].State)
	assert.Contains(t, shown.Tasks[1].Reason, "its job dir is missing")
	assert.Equal(t, 0.01, shown.Tasks[1].Params["lr"], "its params still come from the sweep's record")

	// A sweep whose record has no arrays never reached Slurm: nothing will
	// rebuild that dir, and the reason says so.
	sw, err := submit.ReadSweep(submit.SweepDir(e.Root, swID))
	require.NoError(t, err)
	sw.Arrays = nil
	data, err := json.Marshal(sw)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sw.Dir, job.SweepFile), data, 0o600))
	require.Equal(t, 0, e.Run(t, "show", "-o", "json", string(swID)), e.ErrOut.String())
	require.NoError(t, json.Unmarshal(e.Out.Bytes(), &shown))
	assert.Equal(t, job.Unknown, shown.Tasks[1].State)
	assert.Equal(t, "its job dir is missing, and the sweep never reached Slurm (ferry stopped before sbatch)", shown.Tasks[1].Reason)
}

// A param is shown as the sweep's record holds it: a seed past 2^53 is not
// rounded to a nearby float, in the table or in -o json.
func TestSweepShowBigIntegerParam(t *testing.T) {
	e := newEnv(t)
	swID, _ := writeSweep(t, e, []task{{params: map[string]any{"seed": uint64(12345678901234567891), "lr": 1e-5}}})
	require.Equal(t, 0, e.Run(t, "show", string(swID)), e.ErrOut.String())
	assert.Contains(t, e.Out.String(), "\t1e-05\t12345678901234567891\n")
	require.Equal(t, 0, e.Run(t, "show", "-o", "json", string(swID)), e.ErrOut.String())
	assert.Contains(t, e.Out.String(), `"seed": 12345678901234567891`)
}
