package agent

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSameMountNamespace(t *testing.T) {
	dir := t.TempDir()
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.Symlink(target, p))
		return p
	}
	host := link("host", "mnt:[4026531832]")
	tests := []struct {
		name     string
		theirs   string
		wantErr  string
		wantNote string
	}{
		{name: "the same namespace", theirs: link("same", "mnt:[4026531832]")},
		{
			name:    "dockerd in another namespace",
			theirs:  link("other", "mnt:[4026532999]"),
			wantErr: "the agent (mnt:[4026531832]) and dockerd (pid 77, mnt:[4026532999]) are in different mount namespaces: Docker would not see the directories the agent mounts for each job; run the agent in the host's mount namespace",
		},
		{
			name:     "dockerd's namespace unreadable",
			theirs:   filepath.Join(dir, "missing"),
			wantNote: "cannot read the mount namespace of dockerd (pid 77)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			note, err := sameMountNamespace(host, tt.theirs, 77)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.wantNote == "" {
				assert.Empty(t, note)
			} else {
				assert.Contains(t, note, tt.wantNote)
			}
		})
	}
}

func TestCheckMountNamespace(t *testing.T) {
	// A "dockerd" that is this test process: the same namespace.
	dir, err := os.MkdirTemp("", "ferry-ns-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	note, err := checkMountNamespace("unix://" + sock)
	require.NoError(t, err)
	assert.Empty(t, note)

	note, err = checkMountNamespace("tcp://10.0.0.1:2375")
	require.NoError(t, err)
	assert.Equal(t, "DOCKER_HOST is not a unix socket: cannot check that dockerd sees the agent's mounts", note)

	_, err = checkMountNamespace("unix://" + filepath.Join(dir, "none.sock"))
	assert.ErrorContains(t, err, "docker socket")
}
