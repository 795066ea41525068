package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bad settings are refused with one line that names the setting, exit 2,
// before anything starts: no state dir, no container, no image.
func TestBadConfig(t *testing.T) {
	enabled(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name  string
		extra []string
		users string // the users list; "" = a valid one
		want  string // the whole line on stderr, after "build_cluster.sh: config.sh: "
	}{
		{
			name:  "unknown key",
			extra: []string{"WOKRERS=3"},
			want:  "WOKRERS: unknown setting on line 22 (known: CLUSTER_NAME WORKERS WORKER_CPUS",
		},
		{
			name:  "users list with a duplicate uid",
			users: "carol:3001\n# a comment\ndave:3002\nerin:3001\n",
			want:  "USERS_FILE: users.list:4: uid 3001 is used twice (carol and erin)",
		},
		{
			name:  "missing /home path",
			extra: []string{"HOME_ROOT=/nonexistent/ferry-home"},
			want:  "HOME_ROOT: /nonexistent/ferry-home: no such directory on this host (the shared /home must exist, e.g. the NFS mount)",
		},
		{
			name:  "port in use",
			extra: []string{fmt.Sprintf("JUPYTER_PORT=%d", busy)},
			want:  fmt.Sprintf("JUPYTER_PORT: port %d is already in use on this host (pick another in config.sh)", busy),
		},
		{
			name:  "workers not a number",
			extra: []string{"WORKERS=two"},
			want:  "WORKERS: 'two' is not a number of workers (1-64)",
		},
		{
			name:  "a users line that is not name:uid",
			users: "carol:3001\nDave 3002\n",
			want:  "USERS_FILE: users.list:2: 'Dave3002' is not name:uid (a lowercase user name and a numeric uid)",
		},
		{
			name:  "dashboard admin not listed",
			extra: []string{"DASHBOARD_ADMINS=" + alice + ",mallory"},
			want:  "DASHBOARD_ADMINS: 'mallory' is not in users.list",
		},
		{
			name:  "dashboard URL not http",
			extra: []string{"DASHBOARD_URL=ftp://head"},
			want:  "DASHBOARD_URL: 'ftp://head' is not http(s)://host[:port]",
		},
		{
			name:  "accounting neither on nor off",
			extra: []string{"ACCOUNTING=yes"},
			want:  "ACCOUNTING: 'yes': use 1 (fair share, slurmdbd) or 0 (first come, first served)",
		},
		{
			name:  "a running limit above the submit limit",
			extra: []string{"MAX_RUNNING_PER_USER=50", "MAX_JOBS_PER_USER=20"},
			want:  "MAX_RUNNING_PER_USER: 50 is more than MAX_JOBS_PER_USER (20), which counts running jobs too",
		},
		{
			name:  "a pip index with credentials",
			extra: []string{"PIP_INDEX_URL=https://user:secret@pypi.example/simple"},
			want:  "PIP_INDEX_URL: 'https://user:secret@pypi.example/simple' is not an http(s) URL without credentials (it is recorded in the images)",
		},
		{
			name:  "jupyter user not listed",
			extra: []string{"JUPYTER_USER=mallory"},
			want:  "JUPYTER_USER: 'mallory' is not in the users list",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			extra := append([]string{"CLUSTER_NAME=ferry-badcfg", "STATE_DIR=" + state, "HOME_ROOT=" + dir,
				"DATA_DIR=" + filepath.Join(dir, "data")}, tt.extra...)
			cfg := writeConfig(t, dir, extra...)
			if tt.users != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "users.list"), []byte(tt.users), 0o644))
			}
			r := cluster(t, cfg, 2*time.Minute, "up")
			assert.Equal(t, 2, r.Code, r.String())
			assert.Empty(t, r.Out)
			lines := strings.Split(strings.TrimRight(r.Err, "\n"), "\n")
			require.Len(t, lines, 1, "one line:\n%s", r.Err)
			assert.True(t, strings.HasPrefix(lines[0], "build_cluster.sh: config.sh: "+tt.want), "got:  %s\nwant: build_cluster.sh: config.sh: %s", lines[0], tt.want)

			_, err := os.Stat(state)
			assert.True(t, os.IsNotExist(err), "the state dir was created: %v", err)
			_, err = os.Stat(filepath.Join(dir, "data"))
			assert.True(t, os.IsNotExist(err), "the data dir was created: %v", err)
			ps := run(t, time.Minute, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=ferry-badcfg")
			assert.Empty(t, strings.TrimSpace(ps.Out), "containers were created")
		})
	}
}
