package job_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// mkJob creates an empty job dir for a job submitted at t, and its slurm_id
// file when slurmID is not empty.
func mkJob(t *testing.T, root string, at time.Time, slurmID string) job.ID {
	t.Helper()
	id := job.NewID(at)
	d := job.DirFor(root, id)
	require.NoError(t, os.MkdirAll(d.Path(), 0o700))
	if slurmID != "" {
		require.NoError(t, os.WriteFile(d.SlurmID(), []byte(slurmID+"\n"), 0o600))
	}
	return id
}

func TestDirLayout(t *testing.T) {
	id := job.ID("01hzzzzzzzzzzzzzzzzzzzzzzz")
	d := job.DirFor("/home/ann/.ferry/jobs", id)
	assert.Equal(t, "/home/ann/.ferry/jobs/"+string(id), d.Path())
	assert.Equal(t, id, d.ID())
	assert.Equal(t, d.Path()+"/spec.json", d.Spec())
	assert.Equal(t, d.Path()+"/params.json", d.Params())
	assert.Equal(t, d.Path()+"/bundle.tar.zst", d.Bundle())
	assert.Equal(t, d.Path()+"/job.sbatch", d.Script())
	assert.Equal(t, d.Path()+"/slurm.out", d.SlurmOut())
	assert.Equal(t, d.Path()+"/log", d.Log())
	assert.Equal(t, d.Path()+"/result.json", d.Result())
	assert.Equal(t, d.Path()+"/outputs", d.Outputs())
	assert.Equal(t, d.Path()+"/outputs/metrics.jsonl", d.Metrics())
	assert.Equal(t, d.Path()+"/slurm_id", d.SlurmID())
}

func TestSpoolDirs(t *testing.T) {
	root := t.TempDir()
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	oldest := mkJob(t, root, base, "")
	newest := mkJob(t, root, base.Add(2*time.Hour), "")
	middle := mkJob(t, root, base.Add(time.Hour), "")

	// Things that are not job dirs.
	inflight := job.NewID(base.Add(3 * time.Hour))
	require.NoError(t, os.Mkdir(filepath.Join(root, ".tmp-"+string(inflight)), 0o700))
	require.NoError(t, os.Mkdir(filepath.Join(root, "notes"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(root, string(job.NewID(base.Add(4*time.Hour)))), nil, 0o600))

	dirs, err := job.Spool{Root: root}.Dirs()
	require.NoError(t, err)
	var ids []job.ID
	for _, d := range dirs {
		ids = append(ids, d.ID())
		assert.Equal(t, root, filepath.Dir(d.Path()))
	}
	assert.Equal(t, []job.ID{newest, middle, oldest}, ids)
}

func TestSpoolDirsMissingRoot(t *testing.T) {
	dirs, err := job.Spool{Root: filepath.Join(t.TempDir(), "never-created")}.Dirs()
	require.NoError(t, err, "a user who never submitted has no jobs, not an error")
	assert.Empty(t, dirs)
}

func TestSpoolResolve(t *testing.T) {
	root := t.TempDir()
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	a := mkJob(t, root, base, "41")
	b := mkJob(t, root, base.Add(time.Millisecond), "42")
	c := mkJob(t, root, base.Add(365*24*time.Hour), "")
	spool := job.Spool{Root: root}

	// a and b share their first 9 characters (same timestamp but 1 ms).
	common := 0
	for common < len(a) && a[common] == b[common] {
		common++
	}
	require.GreaterOrEqual(t, common, 8)
	require.NotEqual(t, a[:common], c[:common])

	tests := []struct {
		name    string
		ref     string
		want    job.ID
		wantIs  error
		wantMsg string
	}{
		{name: "full id", ref: string(a), want: a},
		{name: "full id uppercase", ref: string(job.ID(upper(string(b)))), want: b},
		{name: "full id with spaces", ref: "  " + string(c) + "\n", want: c},
		{name: "unique prefix", ref: string(a[:common+1]), want: a},
		{name: "short id", ref: c.Short(), want: c},
		{name: "Slurm id", ref: "42", want: b},
		{name: "other Slurm id", ref: "41", want: a},
		{name: "ambiguous prefix", ref: string(a[:common]), wantIs: job.ErrAmbiguous,
			wantMsg: fmt.Sprintf("%q matches 2 jobs: %s, %s; give more characters", a[:common], b[:max(common+1, 10)], a[:max(common+1, 10)])},
		{name: "unknown id", ref: "7zzzzzzzzz", wantIs: job.ErrNotFound, wantMsg: `no job "7zzzzzzzzz" among your jobs (see 'ferry ls')`},
		{name: "unknown Slurm id", ref: "99", wantIs: job.ErrNotFound, wantMsg: `no job "99" among your jobs (see 'ferry ls')`},
		{name: "unknown id, escaped", ref: "zz\x1b[2J", wantIs: job.ErrNotFound, wantMsg: `no job "zz\x1b[2j" among your jobs (see 'ferry ls')`},
		{name: "empty", ref: "  ", wantIs: job.ErrNotFound, wantMsg: "empty job id: give one of the ids 'ferry ls' shows"},
		{name: "parent dir", ref: "../x", wantIs: job.ErrNotFound, wantMsg: `invalid job id "../x": give one of the ids 'ferry ls' shows`},
		{name: "dot dot", ref: "..", wantIs: job.ErrNotFound, wantMsg: `invalid job id "..": give one of the ids 'ferry ls' shows`},
		{name: "dot", ref: ".", wantIs: job.ErrNotFound, wantMsg: `invalid job id ".": give one of the ids 'ferry ls' shows`},
		{name: "backslash", ref: `a\b`, wantIs: job.ErrNotFound, wantMsg: `invalid job id "a\\b": give one of the ids 'ferry ls' shows`},
		{name: "absolute path", ref: "/" + string(a), wantIs: job.ErrNotFound, wantMsg: `invalid job id "/` + string(a) + `": give one of the ids 'ferry ls' shows`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := spool.Resolve(tt.ref)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
				assert.Equal(t, tt.wantMsg, err.Error(), "one line, saying it once")
				assert.NotContains(t, err.Error(), "job not found")
				assert.Empty(t, d)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, d.ID())
			assert.Equal(t, job.DirFor(root, tt.want), d)
		})
	}
}

// A sweep's tasks are made in one millisecond: their Short ids are equal,
// so an ambiguous prefix names them by longer prefixes, a few at most, and
// each of those resolves.
func TestSpoolResolveAmbiguousSweep(t *testing.T) {
	root := t.TempDir()
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	ids := job.NewIDs(at, 6)
	for _, id := range ids {
		require.NoError(t, os.MkdirAll(job.DirFor(root, id).Path(), 0o700))
	}
	spool := job.Spool{Root: root}
	short := ids[0].Short()
	_, err := spool.Resolve(short)
	require.ErrorIs(t, err, job.ErrAmbiguous)
	msg := err.Error()
	prefix := fmt.Sprintf("%q matches 6 jobs: ", short)
	require.True(t, strings.HasPrefix(msg, prefix), msg)
	require.True(t, strings.HasSuffix(msg, " and 2 more; give more characters"), msg)
	listed := strings.Split(strings.TrimSuffix(strings.TrimPrefix(msg, prefix), " and 2 more; give more characters"), ", ")
	require.Len(t, listed, 4, msg)
	for i, p := range listed {
		assert.Greater(t, len(p), len(short), "%q does not tell the tasks apart", p)
		d, err := spool.Resolve(p)
		require.NoError(t, err, "listed prefix %q", p)
		assert.Equal(t, ids[len(ids)-1-i], d.ID(), "newest first")
	}
}

func TestReadSlurmID(t *testing.T) {
	root := t.TempDir()
	id := mkJob(t, root, time.Now(), " 12345 ")
	assert.Equal(t, "12345", job.ReadSlurmID(job.DirFor(root, id)))
	none := mkJob(t, root, time.Now(), "")
	assert.Equal(t, "", job.ReadSlurmID(job.DirFor(root, none)))
}

func TestSpoolWithin(t *testing.T) {
	s := job.Spool{Root: "/home/ann/.ferry/jobs"}
	assert.True(t, s.Within("/home/ann/.ferry/jobs/01abc"))
	assert.True(t, s.Within("/home/ann/.ferry/jobs/01abc/outputs/x"))
	assert.False(t, s.Within("/home/ann/.ferry/jobs"))
	assert.False(t, s.Within("/home/ann/.ferry"))
	assert.False(t, s.Within("/home/ann/.ferry/jobs/../secret"))
	assert.False(t, s.Within("/etc/passwd"))
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// A sweep task's Slurm id ("123_4") is found through its sweep's durable
// record, whether or not the task's slurm_id hint reached the disk; the
// newest sweep wins when Slurm reused an array id.
func TestSpoolResolveArrayTask(t *testing.T) {
	root := t.TempDir()
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	mkSweep := func(at time.Time, arrays []job.SweepArray, tasks int) []job.ID {
		ids := job.NewIDs(at, tasks+1)
		type task struct {
			Index int    `json:"index"`
			ID    job.ID `json:"id"`
		}
		rec := struct {
			Tasks  []task           `json:"tasks"`
			Arrays []job.SweepArray `json:"arrays"`
		}{Arrays: arrays}
		for i := range tasks {
			rec.Tasks = append(rec.Tasks, task{Index: i, ID: ids[i+1]})
			require.NoError(t, os.MkdirAll(job.DirFor(root, ids[i+1]).Path(), 0o700)) // no slurm_id hint
		}
		dir := filepath.Join(root, job.SweepsDir, string(ids[0]))
		require.NoError(t, os.MkdirAll(dir, 0o700))
		data, err := json.Marshal(rec)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, job.SweepFile), data, 0o600))
		return ids[1:]
	}
	old := mkSweep(base, []job.SweepArray{{SlurmID: "500", First: 0, Last: 2}}, 3)
	split := mkSweep(base.Add(time.Hour), []job.SweepArray{{SlurmID: "600", First: 0, Last: 1}, {SlurmID: "601", First: 2, Last: 3}}, 4)
	reused := mkSweep(base.Add(2*time.Hour), []job.SweepArray{{SlurmID: "500", First: 0, Last: 0}}, 1)
	spool := job.Spool{Root: root}

	for ref, want := range map[string]job.ID{
		"600_0": split[0], "600_1": split[1], "601_0": split[2], "601_1": split[3],
		"500_0": reused[0], // the newest sweep with array 500
		"500_2": old[2],    // only the old one has a task 2
	} {
		d, err := spool.Resolve(ref)
		require.NoError(t, err, ref)
		assert.Equal(t, want, d.ID(), ref)
	}
	for _, ref := range []string{"600_2", "602_0", "500_3", "600_99999999999999999999", "_1", "600_"} {
		_, err := spool.Resolve(ref)
		require.ErrorIs(t, err, job.ErrNotFound, ref)
	}
	// A task whose dir is gone is not found, even though its sweep knows it.
	require.NoError(t, os.RemoveAll(job.DirFor(root, split[3]).Path()))
	_, err := spool.Resolve("601_1")
	require.ErrorIs(t, err, job.ErrNotFound)
	splitSweep := job.NewIDs(base.Add(time.Hour), 1)[0]
	assert.Equal(t, `no job "601_1" among your jobs: sweep `+splitSweep.Short()+` lists it, but its job dir is gone (see 'ferry sweep show `+splitSweep.Short()+`')`, err.Error())
	// The same by its ferry id; a prefix of it is just not found.
	_, err = spool.Resolve(string(split[3]))
	require.ErrorIs(t, err, job.ErrNotFound)
	assert.Equal(t, `no job "`+string(split[3])+`" among your jobs: sweep `+splitSweep.Short()+` lists it, but its job dir is gone (see 'ferry sweep show `+splitSweep.Short()+`')`, err.Error())
	// Nor is an older sweep's task that had the same Slurm id taken for it.
	require.NoError(t, os.RemoveAll(job.DirFor(root, reused[0]).Path()))
	_, err = spool.Resolve("500_0")
	require.ErrorIs(t, err, job.ErrNotFound, "not the old sweep's %s", old[0])

	// A sweep whose record never got its arrays (ferry stopped after
	// sbatch): the task's slurm_id hint finds it.
	hinted := mkSweep(base.Add(3*time.Hour), nil, 1)
	require.NoError(t, os.WriteFile(job.DirFor(root, hinted[0]).SlurmID(), []byte("700_0\n"), 0o600))
	d, err := spool.Resolve("700_0")
	require.NoError(t, err)
	assert.Equal(t, hinted[0], d.ID())
}
