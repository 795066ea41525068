package ls_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/ls"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
)

var now = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// newEnv returns a test env that runs `ferry ls` at now.
func newEnv(t *testing.T) *cmdtest.Env {
	e := cmdtest.New(t, func(f *factory.Factory) *cobra.Command { return ls.NewCmdLs(f, nil) })
	e.Now = func() time.Time { return now }
	return e
}

// hostileJobs are two jobs whose names hold control characters, as `ferry
// submit --name` accepts them, and one plain one.
func hostileJobs(t *testing.T, e *cmdtest.Env) (tab, esc, plain job.Dir) {
	me := observetest.Me(t)
	tab = observetest.WriteJob(t, e.Root, job.Spec{Project: "vision", Name: "lr\t0.1\nbatch 64", Submitted: now.Add(-3 * time.Hour)}, "101")
	observetest.WriteResult(t, tab, job.Succeeded, 0)
	esc = observetest.WriteJob(t, e.Root, job.Spec{Project: "vision", Name: "\x1b[2J\x1b[31mred", Submitted: now.Add(-2 * time.Hour)}, "102")
	plain = observetest.WriteJob(t, e.Root, job.Spec{Project: "nlp", Submitted: now.Add(-5 * time.Minute)}, "103")
	e.Slurm.Set(observetest.Job(me, "102", esc.ID(), "RUNNING"), observetest.Job(me, "103", plain.ID(), "PENDING"))
	return tab, esc, plain
}

func TestLsEscapesNames(t *testing.T) {
	e := newEnv(t)
	tab, esc, plain := hostileJobs(t, e)
	short := func(d job.Dir) string { return d.ID().Short() }

	tests := []struct {
		name string
		tty  bool
		want string
	}{
		{
			name: "terminal: one row per job, names quoted with escapes",
			tty:  true,
			want: "ID          PROJECT  NAME                  STATE      SLURM  NODE  SUBMITTED  RAN  REASON\n" +
				short(plain) + "  nlp      -                     queued     103    -     5m ago     -    waiting (number 1 of 1)\n" +
				short(esc) + "  vision   \"\\x1b[2J\\x1b[31mred\"  running    102    w1    2h ago     -    -\n" +
				short(tab) + "  vision   \"lr\\t0.1\\nbatch 64\"   succeeded  101    w1    3h ago     1s   exited with code 0\n",
		},
		{
			name: "pipe: nine tab-separated fields a line, full ids, RFC 3339",
			want: string(plain.ID()) + "\tnlp\t-\tqueued\t103\t-\t2024-03-01T11:55:00Z\t-\twaiting (number 1 of 1)\n" +
				string(esc.ID()) + "\tvision\t\"\\x1b[2J\\x1b[31mred\"\trunning\t102\tw1\t2024-03-01T10:00:00Z\t-\t-\n" +
				string(tab.ID()) + "\tvision\t\"lr\\t0.1\\nbatch 64\"\tsucceeded\t101\tw1\t2024-03-01T09:00:00Z\t1s\texited with code 0\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.TTY = tt.tty
			require.Equal(t, 0, e.Run(t))
			assert.Equal(t, tt.want, e.Out.String())
			assert.NotContains(t, e.Out.String(), "\x1b", "no raw escape reaches the terminal")
			lines := strings.Split(strings.TrimSuffix(e.Out.String(), "\n"), "\n")
			if !tt.tty {
				require.Len(t, lines, 3)
				for _, l := range lines {
					assert.Len(t, strings.Split(l, "\t"), 9, "%q", l)
				}
			}
			assert.Empty(t, e.ErrOut.String())
		})
	}

	t.Run("json: names exactly as submitted", func(t *testing.T) {
		e.TTY = true
		require.Equal(t, 0, e.Run(t, "-o", "json"))
		var got []job.Status
		require.NoError(t, json.Unmarshal(e.Out.Bytes(), &got))
		require.Len(t, got, 3)
		assert.Equal(t, []string{"", "\x1b[2J\x1b[31mred", "lr\t0.1\nbatch 64"}, []string{got[0].Name, got[1].Name, got[2].Name})
	})
}

// A sweep's tasks are made in one millisecond and share their first 10
// characters: on a terminal each still gets an id of its own, one that
// resolves to it.
func TestLsSweepTasksGetDistinctIDs(t *testing.T) {
	e := newEnv(t)
	e.TTY = true
	sweepID := job.NewID(now.Add(-time.Minute))
	ids := job.NewIDs(now.Add(-time.Minute), 3)
	for i, id := range ids {
		observetest.WriteJob(t, e.Root, job.Spec{ID: id, Project: "sweep", Submitted: now.Add(-time.Minute), Sweep: &job.SweepRef{ID: sweepID, Index: i}}, "")
	}
	other := observetest.WriteJob(t, e.Root, job.Spec{Project: "other", Submitted: now.Add(-time.Hour)}, "")

	require.Equal(t, 0, e.Run(t, "--project", "sweep"))
	lines := strings.Split(strings.TrimSuffix(e.Out.String(), "\n"), "\n")
	require.Len(t, lines, 4, e.Out.String())
	seen := map[string]bool{}
	for i, l := range lines[1:] {
		shown := strings.Fields(l)[0]
		assert.False(t, seen[shown], "id %s shown twice", shown)
		seen[shown] = true
		d, err := job.Spool{Root: e.Root}.Resolve(shown)
		require.NoError(t, err, "the id ls shows must resolve")
		assert.Equal(t, ids[len(ids)-1-i], d.ID())
	}

	require.Equal(t, 0, e.Run(t, "--project", "other"))
	assert.True(t, strings.HasPrefix(strings.Split(e.Out.String(), "\n")[1], other.ID().Short()+"  other "), "a lone job keeps its 10 characters:\n%s", e.Out.String())
}

func TestLsEmpty(t *testing.T) {
	tests := []struct {
		name       string
		tty        bool
		jobs       bool
		args       []string
		wantErrOut string
	}{
		{name: "terminal, no jobs", tty: true, wantErrOut: "no jobs yet: submit one with 'ferry submit DIR'\n"},
		{name: "terminal, none match", tty: true, jobs: true, args: []string{"--project", "nope", "--state", "failed"},
			wantErrOut: "no jobs match --project nope --state failed\n"},
		{name: "pipe: nothing at all", jobs: true, args: []string{"--state", "failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.TTY = tt.tty
			if tt.jobs {
				hostileJobs(t, e)
			}
			require.Equal(t, 0, e.Run(t, tt.args...))
			assert.Empty(t, e.Out.String(), "stdout carries only results")
			assert.Equal(t, tt.wantErrOut, e.ErrOut.String())
		})
	}
	e := newEnv(t)
	require.Equal(t, 0, e.Run(t, "-o", "json"))
	assert.Equal(t, "[]\n", e.Out.String())
}

func TestLsFilters(t *testing.T) {
	e := newEnv(t)
	tab, esc, plain := hostileJobs(t, e)
	tests := []struct {
		args []string
		want []job.Dir
		code int
		msg  string
	}{
		{args: nil, want: []job.Dir{plain, esc, tab}},
		{args: []string{"--project", "vision"}, want: []job.Dir{esc, tab}},
		{args: []string{"--state", "running"}, want: []job.Dir{esc}},
		{args: []string{"-n", "1"}, want: []job.Dir{plain}},
		{args: []string{"--state", "done"}, code: factory.CodeUsage, msg: `--state: unknown state "done"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			require.Equal(t, tt.code, e.Run(t, tt.args...), e.ErrOut.String())
			if tt.code != 0 {
				assert.Contains(t, e.ErrOut.String(), tt.msg)
				assert.Empty(t, e.Out.String())
				return
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSuffix(e.Out.String(), "\n"), "\n") {
				got = append(got, strings.Split(l, "\t")[0])
			}
			var want []string
			for _, d := range tt.want {
				want = append(want, string(d.ID()))
			}
			assert.Equal(t, want, got)
		})
	}
}
