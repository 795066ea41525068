package root

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
)

// A command line ferry cannot read is a usage error (exit code 2) in one
// line that says where to look.
func TestCommandLineErrorsAreUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"foo"}, `unknown command "foo" for "ferry" (see 'ferry --help')`},
		{[]string{"stauts", "x"}, `unknown command "stauts" for "ferry"; did you mean "status"? (see 'ferry --help')`},
		{[]string{"status"}, `status accepts 1 arg(s), received 0 (see 'ferry status --help')`},
		{[]string{"sweep", "show"}, `sweep show accepts 1 arg(s), received 0 (see 'ferry sweep show --help')`},
		{[]string{"ls", "--bogus"}, `unknown flag: --bogus (see 'ferry ls --help')`},
		{[]string{"submit", "--cpus", "x", "dir"}, `invalid argument "x" for "--cpus" flag`},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			f := factory.New("test")
			f.IO = &factory.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
			cmd := NewCmdRoot(f)
			cmd.SetArgs(tt.args)
			err := execute(context.Background(), cmd)
			require.Error(t, err)
			var ue *factory.UsageError
			assert.True(t, errors.As(err, &ue), "a usage error, got %T", err)
			assert.Equal(t, 2, factory.ExitCode(err))
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, oneLine(err), "\n")
		})
	}
}
