package agent

import (
	"fmt"
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

// A worker container's mountinfo: its root is private, the agents' mount
// dir is bound from the host with rshared propagation.
const containerMountinfo = `600 550 0:40 / / rw,relatime - overlay overlay rw
601 600 0:41 / /proc rw,nosuid - proc proc rw
91 600 254:0 /run/ferry-cluster/mnt /run/ferry-cluster/mnt rw,relatime shared:2 - ext4 /dev/vda rw
92 600 254:0 /srv/home /home rw,relatime - ext4 /dev/vda rw
93 600 254:0 /srv/a\040b /srv/a\040b rw,relatime shared:7 - ext4 /dev/vda rw
`

func TestMountOf(t *testing.T) {
	info := filepath.Join(t.TempDir(), "mountinfo")
	require.NoError(t, os.WriteFile(info, []byte(containerMountinfo), 0o644))
	tests := []struct {
		path       string
		wantMount  string
		wantShared bool
	}{
		{"/run/ferry-cluster/mnt/w1", "/run/ferry-cluster/mnt", true},
		{"/run/ferry-cluster/mnt", "/run/ferry-cluster/mnt", true},
		{"/run/ferry-cluster/mntx", "/", false},
		{"/run/ferry/mnt/w1", "/", false},
		{"/home/alice", "/home", false},
		{"/srv/a b/c", "/srv/a b", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			mp, shared, err := mountOf(info, tt.path)
			require.NoError(t, err)
			assert.Equal(t, tt.wantMount, mp)
			assert.Equal(t, tt.wantShared, shared)
		})
	}
	_, _, err := mountOf(filepath.Join(t.TempDir(), "none"), "/x")
	assert.Error(t, err)
}

func TestCheckDockerSeesMounts(t *testing.T) {
	info := filepath.Join(t.TempDir(), "mountinfo")
	require.NoError(t, os.WriteFile(info, []byte(containerMountinfo), 0o644))
	// dockerd's namespace cannot be compared (a TCP socket is never; a
	// missing socket is an error as before).
	note, err := checkDockerSeesMounts("tcp://10.0.0.1:2375", "/run/ferry/mnt/w1", info)
	require.NoError(t, err)
	assert.Contains(t, note, "not a unix socket")
	_, err = checkDockerSeesMounts("unix://"+filepath.Join(t.TempDir(), "none.sock"), "/run/ferry/mnt/w1", info)
	assert.ErrorContains(t, err, "docker socket")
}

// The decision itself, for a dockerd outside the agent's pid namespace
// (its pid reads as 0) or in another mount namespace: a shared mount root
// passes, a private one fails and says how to fix it.
func TestDecideMounts(t *testing.T) {
	info := filepath.Join(t.TempDir(), "mountinfo")
	require.NoError(t, os.WriteFile(info, []byte(containerMountinfo), 0o644))
	unreadable := unreadableNote + " (pid 0): readlink /proc/0/ns/mnt: no such file or directory"
	other := fmt.Errorf("the agent (a) and dockerd (pid 9, b) are %w: run it in the host's", errOtherNamespace)

	note, err := decideMounts(unreadable, nil, "/run/ferry-cluster/mnt/w1", info)
	require.NoError(t, err)
	assert.Contains(t, note, "is on the shared mount /run/ferry-cluster/mnt")

	note, err = decideMounts("", other, "/run/ferry-cluster/mnt/w1", info)
	require.NoError(t, err)
	assert.Contains(t, note, "shared mount")

	_, err = decideMounts(unreadable, nil, "/run/ferry/mnt/w1", info)
	assert.EqualError(t, err, unreadable+", and the mount root /run/ferry/mnt/w1 is on /, which is not a shared mount: "+
		"Docker would not see the directories the agent mounts for each job; bind the mount root from the host with rshared propagation (build_cluster.sh does)")

	_, err = decideMounts("", other, "/home/x", info)
	assert.ErrorIs(t, err, errOtherNamespace)
	assert.ErrorContains(t, err, "or bind the mount root /home/x from the host with rshared propagation (it is on /home, which is not shared)")

	// The same namespace, or a note that is not about namespaces: as is.
	note, err = decideMounts("", nil, "/run/ferry/mnt/w1", info)
	require.NoError(t, err)
	assert.Empty(t, note)
}
