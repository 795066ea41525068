package slurm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSbatchInPath puts an sbatch on PATH that reads its whole script from
// stdin, records it and its arguments, and prints a job id.
func fakeSbatchInPath(t *testing.T) (got, args string) {
	t.Helper()
	dir := t.TempDir()
	got, args = filepath.Join(dir, "script"), filepath.Join(dir, "args")
	sbatch := "#!/bin/sh\nin=$(cat; echo .)\nprintf '%s' \"${in%.}\" > " + got + "\necho \"$*\" > " + args + "\necho 4242\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sbatch"), []byte(sbatch), 0o755))
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return got, args
}

func TestStartSubmit(t *testing.T) {
	ctx := context.Background()

	t.Run("the script goes in on stdin when Submit is called", func(t *testing.T) {
		got, args := fakeSbatchInPath(t)
		p := New().StartSubmit(ctx, "--partition", "p1")
		time.Sleep(50 * time.Millisecond)
		assert.NoFileExists(t, got, "sbatch has no script before Submit")
		script := "#!/bin/bash\n#SBATCH --exclusive\nexec ferry sandbox run\n"
		id, err := p.Submit("/spool/x/job.sbatch", []byte(script))
		require.NoError(t, err)
		assert.Equal(t, "4242", id)
		b, err := os.ReadFile(got)
		require.NoError(t, err)
		assert.Equal(t, script, string(b), "the very bytes handed over")
		a, err := os.ReadFile(args)
		require.NoError(t, err)
		assert.Equal(t, "--parsable --partition p1", strings.TrimSpace(string(a)), "no script path: it reads stdin")
		p.Abort() // after Submit: nothing happens
	})

	t.Run("Abort submits nothing", func(t *testing.T) {
		got, args := fakeSbatchInPath(t)
		p := New().StartSubmit(ctx)
		p.Abort()
		time.Sleep(50 * time.Millisecond)
		assert.NoFileExists(t, got)
		assert.NoFileExists(t, args)
	})

	t.Run("a Runner that cannot start early runs sbatch on the path", func(t *testing.T) {
		f := &fakeRunner{replies: map[string]reply{"sbatch": {Out: "77\n"}}}
		p := (&Client{Runner: f}).StartSubmit(ctx, "--partition", "p1")
		id, err := p.Submit("/spool/x/job.sbatch", []byte("ignored"))
		require.NoError(t, err)
		assert.Equal(t, "77", id)
		assert.Equal(t, call{Name: "sbatch", Args: []string{"--parsable", "--partition", "p1", "/spool/x/job.sbatch"}}, f.last())
		p.Abort()
	})

	t.Run("a script too big for one pipe write goes by its path", func(t *testing.T) {
		got, args := fakeSbatchInPath(t)
		path := filepath.Join(t.TempDir(), "job.sbatch")
		big := "#!/bin/bash\n" + strings.Repeat("# padding\n", 1000)
		require.NoError(t, os.WriteFile(path, []byte(big), 0o700))
		id, err := New().StartSubmit(ctx).Submit(path, []byte(big))
		require.NoError(t, err)
		assert.Equal(t, "4242", id)
		a, err := os.ReadFile(args)
		require.NoError(t, err)
		assert.Equal(t, "--parsable "+path, strings.TrimSpace(string(a)))
		b, err := os.ReadFile(got)
		require.NoError(t, err)
		assert.Empty(t, b, "the early sbatch was killed unfed; the second read the file, not stdin")
	})

	t.Run("sbatch's refusal is the error", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "sbatch"), []byte("#!/bin/sh\ncat >/dev/null\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n"), 0o755))
		t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
		_, err := New().StartSubmit(ctx).Submit("/x", []byte("#!/bin/bash\n"))
		assert.EqualError(t, err, "sbatch: invalid partition specified: nope (exit 1)")
	})
}
