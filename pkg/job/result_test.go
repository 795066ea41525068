package job_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

func TestResultRoundTrip(t *testing.T) {
	d := job.Dir(t.TempDir())
	start := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	want := &job.Result{
		State: job.Failed, Reason: "exited with code 3", ExitCode: 3,
		Node: "w1", SlurmJobID: "42", Image: "ferry/sandbox:latest", ImageDigest: "sha256:abc",
		BatchStart: start, Started: start.Add(time.Second), Ended: start.Add(time.Minute),
		WrittenBy: "sandbox",
	}
	require.NoError(t, job.WriteResult(d, want))

	got, err := job.ReadResult(d)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	fi, err := os.Stat(d.Result())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "result.json is readable only by its owner")

	// The field names are an interface: users' scripts read them.
	raw, err := os.ReadFile(d.Result())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	assert.Equal(t, "failed", m["state"])
	assert.Equal(t, float64(3), m["exit_code"])
	assert.Equal(t, "sandbox", m["written_by"])
	assert.Equal(t, "42", m["slurm_job_id"])

	// Overwriting leaves no temp files behind.
	want.WrittenBy = "epilog"
	require.NoError(t, job.WriteResult(d, want))
	ents, err := os.ReadDir(d.Path())
	require.NoError(t, err)
	require.Len(t, ents, 1)
	assert.Equal(t, "result.json", ents[0].Name())
}

func TestResultOmitsZeroTimes(t *testing.T) {
	d := job.Dir(t.TempDir())
	require.NoError(t, job.WriteResult(d, &job.Result{State: job.Cancelled, ExitCode: -1, WrittenBy: "epilog"}))
	raw, err := os.ReadFile(d.Result())
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "batch_start")
	assert.NotContains(t, string(raw), `"started"`)
	assert.NotContains(t, string(raw), `"node"`)
}

func TestReadResultMissing(t *testing.T) {
	res, err := job.ReadResult(job.Dir(t.TempDir()))
	assert.NoError(t, err)
	assert.Nil(t, res)
}

func TestReadResultCorrupt(t *testing.T) {
	d := job.Dir(t.TempDir())
	require.NoError(t, os.WriteFile(d.Result(), []byte(`{"state": `), 0o600))
	res, err := job.ReadResult(d)
	require.Error(t, err)
	assert.Nil(t, res)
	assert.Contains(t, err.Error(), d.Result())
}

func TestReadSpec(t *testing.T) {
	d := job.Dir(t.TempDir())
	_, err := job.ReadSpec(d)
	require.ErrorIs(t, err, fs.ErrNotExist)

	want := validSpec()
	want.ID = job.NewID(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	want.Params = map[string]any{"lr": 0.1, "name": "x"}
	want.Submitted = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	data, err := json.Marshal(want)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(d.Spec(), data, 0o600))
	got, err := job.ReadSpec(d)
	require.NoError(t, err)
	assert.Equal(t, &want, got)

	require.NoError(t, os.WriteFile(d.Spec(), []byte("not json"), 0o600))
	_, err = job.ReadSpec(d)
	require.Error(t, err)
	assert.Contains(t, err.Error(), d.Spec())
}
