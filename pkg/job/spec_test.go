package job_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

func TestParseMem(t *testing.T) {
	const (
		K = int64(1) << 10
		M = int64(1) << 20
		G = int64(1) << 30
		T = int64(1) << 40
	)
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "512M", want: 512 * M},
		{in: "512m", want: 512 * M},
		{in: "4G", want: 4 * G},
		{in: " 4G ", want: 4 * G},
		{in: "1.5G", want: G + G/2},
		{in: "0.5G", want: 512 * M},
		{in: "1024", want: 1024 * M},
		{in: "1", want: M},
		{in: "100K", want: 100 * K},
		{in: "2T", want: 2 * T},
		{in: "4GB", want: 4 * G},
		{in: "4GiB", want: 4 * G},
		{in: "4gib", want: 4 * G},
		{in: "512MB", want: 512 * M},
		{in: "999999999999", want: 999999999999 * M}, // 12 digits of MB still fits
		{in: "", wantErr: "want a size such as 512M or 4G"},
		{in: "   ", wantErr: "want a size such as 512M or 4G"},
		{in: "G", wantErr: "want a size such as 512M or 4G"},
		{in: "lots", wantErr: "want a size such as 512M or 4G"},
		{in: "-1G", wantErr: "want a size such as 512M or 4G"},
		{in: "+1G", wantErr: "want a size such as 512M or 4G"},
		{in: "0", wantErr: "must be more than zero"},
		{in: "0G", wantErr: "must be more than zero"},
		{in: "1e9", wantErr: "want a size such as 512M or 4G"},
		{in: "1.", wantErr: "want a size such as 512M or 4G"},
		{in: ".5G", wantErr: "want a size such as 512M or 4G"},
		{in: "1.2.3G", wantErr: "want a size such as 512M or 4G"},
		{in: "4 G", wantErr: "want a size such as 512M or 4G"},
		{in: "4P", wantErr: "want a size such as 512M or 4G"},
		{in: "1234567890123", wantErr: "want a size such as 512M or 4G"},
		{in: "99999999999999999999T", wantErr: "want a size such as 512M or 4G"},
		{in: "9000000000G", wantErr: "invalid memory size"}, // over int64
		{in: "16777216T", wantErr: "invalid memory size"},   // exactly 2^64 bytes
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := job.ParseMem(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err, "got %d", got)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), "invalid memory size")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFormatMem(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0M"},
		{1, "1M"},
		{1 << 20, "1M"},
		{1<<20 + 1, "2M"},
		{512 << 20, "512M"},
		{1 << 30, "1G"},
		{3 << 29, "1536M"},
		{2 << 40, "2048G"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, job.FormatMem(tt.in), "FormatMem(%d)", tt.in)
	}
	// What FormatMem prints, ParseMem reads back as at least as much.
	for _, in := range []int64{1, 100 << 10, 512 << 20, 1<<30 + 1, 3 << 29, 2 << 40} {
		back, err := job.ParseMem(job.FormatMem(in))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, back, in)
		assert.Less(t, back-in, int64(1<<20))
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "30", want: 30 * time.Minute},
		{in: " 30 ", want: 30 * time.Minute},
		{in: "10:00", want: 10 * time.Minute},
		{in: "0:30", want: 30 * time.Second},
		{in: "1:00:00", want: time.Hour},
		{in: "1-00", want: 24 * time.Hour},
		{in: "1-2:30", want: 26*time.Hour + 30*time.Minute},
		{in: "1-02:03:04", want: 26*time.Hour + 3*time.Minute + 4*time.Second},
		{in: "0-0:30", want: 30 * time.Minute},
		{in: "90m", want: 90 * time.Minute},
		{in: "2h30m", want: 2*time.Hour + 30*time.Minute},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "1500ms", want: 2 * time.Second},
		{in: "", wantErr: true},
		{in: "0", wantErr: true},
		{in: "0s", wantErr: true},
		{in: "00:00", wantErr: true},
		{in: "0-0", wantErr: true},
		{in: "-5m", wantErr: true},
		{in: "-5", wantErr: true},
		{in: "1:2:3:4", wantErr: true},
		{in: "1-1:2:3:4", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "1-", wantErr: true},
		{in: "x-1", wantErr: true},
		{in: "1::2", wantErr: true},
		{in: "12345678", wantErr: true},
		{in: "123456-00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := job.ParseTime(tt.in)
			if tt.wantErr {
				require.Error(t, err, "got %v", got)
				assert.Contains(t, err.Error(), "invalid time limit")
				assert.Contains(t, err.Error(), "D-HH:MM:SS", "the message shows the accepted forms")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0-00:00:00"},
		{59, "0-00:00:59"},
		{3600, "0-01:00:00"},
		{93784, "1-02:03:04"},
		{10 * 86400, "10-00:00:00"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, job.FormatTime(tt.in))
		// Slurm's D-HH:MM:SS reads back to the same number of seconds.
		if tt.in > 0 {
			d, err := job.ParseTime(tt.want)
			require.NoError(t, err)
			assert.Equal(t, time.Duration(tt.in)*time.Second, d)
		}
	}
}

func validSpec() job.Spec {
	return job.Spec{
		Project:   "demo",
		Command:   []string{"python3", "main.py"},
		Image:     "ferry/sandbox:latest",
		Resources: job.Resources{CPUs: 1, MemBytes: 1 << 30},
		Env:       map[string]string{"OMP_NUM_THREADS": "4", "_x": "y"},
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*job.Spec)
		wantErr []string
	}{
		{name: "valid", edit: func(*job.Spec) {}},
		{name: "project with dots and dashes", edit: func(s *job.Spec) { s.Project = "My.proj_2-x" }},
		{name: "project of 63 characters", edit: func(s *job.Spec) { s.Project = strings.Repeat("a", 63) }},
		{name: "empty project", edit: func(s *job.Spec) { s.Project = "" }, wantErr: []string{`invalid project name ""`}},
		{name: "project of 64 characters", edit: func(s *job.Spec) { s.Project = strings.Repeat("a", 64) }, wantErr: []string{"invalid project name", "at most 63"}},
		{name: "project with a space", edit: func(s *job.Spec) { s.Project = "my proj" }, wantErr: []string{`invalid project name "my proj"`}},
		{name: "project with a slash", edit: func(s *job.Spec) { s.Project = "a/b" }, wantErr: []string{"invalid project name"}},
		{name: "project starting with a dash", edit: func(s *job.Spec) { s.Project = "-rf" }, wantErr: []string{"invalid project name"}},
		{name: "project starting with a dot", edit: func(s *job.Spec) { s.Project = ".." }, wantErr: []string{"invalid project name"}},
		{name: "project with a newline", edit: func(s *job.Spec) { s.Project = "a\nb" }, wantErr: []string{"invalid project name"}},
		{name: "no command", edit: func(s *job.Spec) { s.Command = nil }, wantErr: []string{"no command: set command in job.yaml or pass one after --"}},
		{name: "blank command", edit: func(s *job.Spec) { s.Command = []string{"  ", "x"} }, wantErr: []string{"no command"}},
		{name: "no image", edit: func(s *job.Spec) { s.Image = "" }, wantErr: []string{"no image"}},
		{name: "zero cpus", edit: func(s *job.Spec) { s.Resources.CPUs = 0 }, wantErr: []string{"cpus must be at least 1, got 0"}},
		{name: "negative mem", edit: func(s *job.Spec) { s.Resources.MemBytes = -1 }, wantErr: []string{"must not be negative"}},
		{name: "negative gpus", edit: func(s *job.Spec) { s.Resources.GPUs = -1 }, wantErr: []string{"must not be negative"}},
		{name: "negative time", edit: func(s *job.Spec) { s.Resources.TimeLimit = -1 }, wantErr: []string{"must not be negative"}},
		{name: "long name", edit: func(s *job.Spec) { s.Name = strings.Repeat("n", 201) }, wantErr: []string{"name is 201 characters long"}},
		{name: "env name with a dash", edit: func(s *job.Spec) { s.Env["MY-VAR"] = "x" }, wantErr: []string{`invalid env name "MY-VAR"`}},
		{name: "env name starting with a digit", edit: func(s *job.Spec) { s.Env["1X"] = "x" }, wantErr: []string{`invalid env name "1X"`}},
		{name: "env name empty", edit: func(s *job.Spec) { s.Env[""] = "x" }, wantErr: []string{`invalid env name ""`}},
		{name: "env FERRY_ reserved", edit: func(s *job.Spec) { s.Env["FERRY_JOB_DIR"] = "/x" }, wantErr: []string{`env name "FERRY_JOB_DIR" is reserved`}},
		{name: "env SLURM_ reserved", edit: func(s *job.Spec) { s.Env["SLURM_JOB_ID"] = "1" }, wantErr: []string{`env name "SLURM_JOB_ID" is reserved`}},
		{name: "every problem at once", edit: func(s *job.Spec) {
			s.Project, s.Command, s.Image, s.Resources.CPUs = "", nil, "", 0
		}, wantErr: []string{"invalid project name", "no command", "no image", "cpus must be at least 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.edit(&s)
			err := s.Validate()
			if len(tt.wantErr) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}
