package factory_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

func TestExitCode(t *testing.T) {
	slurmErr := &slurm.CmdError{Args: []string{"sbatch", "job.sbatch"}, ExitCode: 1, Stderr: "sbatch: error: Invalid partition name specified\n"}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"generic", errors.New("boom"), factory.CodeError},
		{"usage", factory.Usagef("--mem %q: bad", "x"), factory.CodeUsage},
		{"wrapped usage", fmt.Errorf("submit: %w", &factory.UsageError{Err: errors.New("bad")}), factory.CodeUsage},
		{"exit error", &factory.ExitError{Code: 3}, 3},
		{"exit error 0", &factory.ExitError{Code: 0}, 0},
		{"wrapped exit error", fmt.Errorf("wait: %w", &factory.ExitError{Code: 124, Silent: true}), 124},
		{"exit error wins over what it wraps", &factory.ExitError{Code: 137, Err: job.ErrNotFound}, 137},
		{"not found", job.ErrNotFound, factory.CodeNotFound},
		{"wrapped not found", fmt.Errorf("no job %q in /spool: %w", "01ab", job.ErrNotFound), factory.CodeNotFound},
		{"ambiguous", fmt.Errorf("%q matches 2 jobs: %w", "01", job.ErrAmbiguous), factory.CodeNotFound},
		{"usage wins over not found", &factory.UsageError{Err: job.ErrNotFound}, factory.CodeUsage},
		{"slurm command", slurmErr, factory.CodeSlurm},
		{"wrapped slurm command", fmt.Errorf("sbatch refused job 01ab: %w", slurmErr), factory.CodeSlurm},
		{"joined slurm command", errors.Join(errors.New("x"), slurmErr), factory.CodeSlurm},
		{"a missing file is an error, not bad usage", fmt.Errorf("read spec.json: %w", fs.ErrNotExist), factory.CodeError},
		{"permission", fs.ErrPermission, factory.CodeError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, factory.ExitCode(tt.err))
		})
	}
}

func TestExitCodesAreDistinct(t *testing.T) {
	codes := []int{factory.CodeOK, factory.CodeError, factory.CodeUsage, factory.CodeNotFound, factory.CodeSlurm,
		factory.CodeCancelled, factory.CodeTimeout, factory.CodeOOM}
	seen := map[int]bool{}
	for _, c := range codes {
		assert.False(t, seen[c], "code %d used twice", c)
		seen[c] = true
	}
	for _, line := range []string{"0    success", "2    bad flags", "4    no such job", "5    Slurm"} {
		assert.Contains(t, factory.ExitCodesHelp, line)
	}
}

func TestSilent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"generic", errors.New("x"), false},
		{"loud exit error", &factory.ExitError{Code: 3}, false},
		{"silent exit error", &factory.ExitError{Code: 3, Silent: true}, true},
		{"wrapped silent exit error", fmt.Errorf("wait: %w", &factory.ExitError{Code: 3, Silent: true}), true},
		{"usage", factory.Usagef("x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, factory.Silent(tt.err))
		})
	}
}

func TestErrorMessages(t *testing.T) {
	assert.Equal(t, "exit status 3", (&factory.ExitError{Code: 3}).Error())
	assert.Equal(t, "job failed", (&factory.ExitError{Code: 3, Err: errors.New("job failed")}).Error())
	assert.Equal(t, `--mem "x": bad`, factory.Usagef("--mem %q: bad", "x").Error())
	inner := errors.New("inner")
	assert.ErrorIs(t, &factory.UsageError{Err: inner}, inner)
	assert.ErrorIs(t, &factory.ExitError{Code: 1, Err: inner}, inner)
}
