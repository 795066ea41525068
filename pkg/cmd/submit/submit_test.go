package submit

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
)

// Ctrl-C during a submit: one line that says so, exit code 130, and
// nothing left in the spool.
func TestSubmitInterrupted(t *testing.T) {
	f := testFactory(t)
	cfg, err := f.Config()
	require.NoError(t, err)
	proj := filepath.Join(t.TempDir(), "demo")
	require.NoError(t, os.MkdirAll(proj, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(proj, "main.py"), []byte("print(1)\n"), 0o644))

	ctx, interrupt := context.WithCancel(context.Background())
	interrupt()
	cmd := NewCmdSubmit(f, nil)
	cmd.SetArgs([]string{proj, "--", "python3", "main.py"})
	err = cmd.ExecuteContext(ctx)
	require.Error(t, err)
	assert.Equal(t, "interrupted: the submit stopped and removed what it had written", err.Error())
	assert.Equal(t, factory.CodeInterrupted, factory.ExitCode(err))
	ents, _ := os.ReadDir(cfg.SpoolRoot)
	assert.Empty(t, ents, "nothing in the spool")
}
