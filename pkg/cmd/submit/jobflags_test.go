package submit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

func testFactory(t *testing.T) *factory.Factory {
	t.Helper()
	cfg := config.Default()
	cfg.SpoolRoot = t.TempDir()
	return &factory.Factory{
		IO:         &factory.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}},
		Config:     func() (*config.Config, error) { return cfg, nil },
		Slurm:      slurm.New,
		Executable: os.Executable,
	}
}

// The resource flags: a value given on the command line is checked there
// (a negative or zero CPU count is never quietly replaced by job.yaml's),
// and a flag not given leaves the choice to job.yaml.
func TestJobFlagsResources(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantErr  string
		wantCPUs int
		wantGPUs int
	}{
		{name: "nothing given", args: []string{"proj"}, wantCPUs: 0, wantGPUs: -1},
		{name: "cpus and gpus given", args: []string{"--cpus", "4", "--gpus", "1", "proj"}, wantCPUs: 4, wantGPUs: 1},
		{name: "no gpus asked for explicitly", args: []string{"--gpus", "0", "proj"}, wantGPUs: 0},
		{name: "negative cpus", args: []string{"--cpus", "-3", "proj"}, wantErr: "--cpus -3: ask for at least 1 CPU"},
		{name: "zero cpus", args: []string{"--cpus", "0", "proj"}, wantErr: "--cpus 0: ask for at least 1 CPU"},
		{name: "negative gpus", args: []string{"--gpus=-1", "proj"}, wantErr: "--gpus -1: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFactory(t)
			var got *Options
			cmd := NewCmdSubmit(f, func(_ context.Context, o *Options) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			require.NoError(t, cmd.Execute())
			require.NotNil(t, got)
			_, err := got.Job.Submitter(f)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				var ue *factory.UsageError
				assert.True(t, errors.As(err, &ue), "a usage error (exit 2), got %T", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantCPUs, got.Job.Request.CPUs)
			assert.Equal(t, tt.wantGPUs, got.Job.Request.GPUs)
		})
	}
}
