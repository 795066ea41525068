package status_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/status"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
)

// newEnv returns a test env that runs `ferry status`.
func newEnv(t *testing.T) *cmdtest.Env {
	return cmdtest.New(t, func(f *factory.Factory) *cobra.Command { return status.NewCmdStatus(f, nil) })
}

func TestStatusEscapes(t *testing.T) {
	e := newEnv(t)
	d := observetest.WriteJob(t, e.Root, job.Spec{
		Project: "vision", Name: "lr\t0.1\nbatch\x1b[2J",
		Command: []string{"python3", "-c", "print(1)\nprint(2)", "two words"},
	}, "4242")
	observetest.WriteResult(t, d, job.Failed, 3)

	require.Equal(t, 0, e.Run(t, "4242"))
	lines := strings.Split(strings.TrimSuffix(e.Out.String(), "\n"), "\n")
	require.Len(t, lines, 14, "one line per field:\n%s", e.Out.String())
	assert.Equal(t, []string{
		"id:        " + string(d.ID()),
		"project:   vision",
		`name:      "lr\t0.1\nbatch\x1b[2J"`,
		"state:     failed",
		"reason:    exited with code 3",
		"exit code: 3",
		"slurm job: 4242",
		"node:      w1",
		"image:     ferry/sandbox:latest",
		`command:   python3 -c "print(1)\nprint(2)" "two words"`,
	}, lines[:10])
	assert.Equal(t, "dir:       "+d.Path(), lines[13])
	assert.NotContains(t, e.Out.String(), "\x1b")

	require.Equal(t, 0, e.Run(t, "-o", "json", string(d.ID())))
	var st job.Status
	require.NoError(t, json.Unmarshal(e.Out.Bytes(), &st))
	assert.Equal(t, "lr\t0.1\nbatch\x1b[2J", st.Name, "-o json is exact")
	assert.Equal(t, "print(1)\nprint(2)", st.Command[2])
}

// An id that names none of the caller's jobs says so once, in one line,
// and points to 'ferry ls'; an ambiguous prefix names a few candidates.
func TestStatusUnknownID(t *testing.T) {
	e := newEnv(t)
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	ids := job.NewIDs(at, 5) // a sweep's tasks: one millisecond
	for _, id := range ids {
		observetest.WriteJob(t, e.Root, job.Spec{ID: id, Submitted: at}, "")
	}
	short := job.ShortUnique(ids)
	other := observetest.Job("bob", "777", job.NewID(at), "RUNNING")
	e.Slurm.Set(other)

	tests := []struct {
		name string
		ref  string
		want string
	}{
		{"unknown id", "zzzz", `ferry: no job "zzzz" among your jobs (see 'ferry ls')`},
		{"unknown Slurm id", "999", `ferry: no job "999" among your jobs (see 'ferry ls')`},
		{"ambiguous prefix", ids[0].Short(), fmt.Sprintf(`ferry: %q matches 5 jobs: %s, %s, %s, %s and 1 more; give more characters`,
			ids[0].Short(), short[ids[4]], short[ids[3]], short[ids[2]], short[ids[1]])},
		{"another user's Slurm job", "777", "belongs to bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, factory.CodeNotFound, e.Run(t, tt.ref))
			assert.Empty(t, e.Out.String())
			msg := strings.TrimSuffix(e.ErrOut.String(), "\n")
			assert.NotContains(t, msg, "\n", "one line")
			assert.Contains(t, msg, tt.want)
			assert.LessOrEqual(t, strings.Count(msg, "not found")+strings.Count(msg, "no job"), 1, "says it once: %s", msg)
		})
	}
	require.Equal(t, 0, e.Run(t, short[ids[2]]), "a listed prefix resolves")
	assert.Contains(t, e.Out.String(), "id:        "+string(ids[2]))
}
