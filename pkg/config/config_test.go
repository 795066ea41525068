package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layers writes the given system and user files ("" = no file) under a temp
// home and returns Layers pointing at them.
func layers(t *testing.T, system, user string, env ...string) Layers {
	t.Helper()
	home := t.TempDir()
	l := Layers{
		System: filepath.Join(t.TempDir(), "etc", "config.yaml"),
		User:   filepath.Join(home, UserPath),
		Home:   home,
		Env:    env,
	}
	if system != "" {
		require.NoError(t, os.MkdirAll(filepath.Dir(l.System), 0o755))
		require.NoError(t, os.WriteFile(l.System, []byte(system), 0o644))
	}
	if user != "" {
		require.NoError(t, os.MkdirAll(filepath.Dir(l.User), 0o700))
		require.NoError(t, os.WriteFile(l.User, []byte(user), 0o600))
	}
	return l
}

func TestLoadFromLayering(t *testing.T) {
	const system = `
default_image: sys/img:1
images: [sys/img:1, user/img:2, env/img:3]
spool_root: /sys/spool
defaults:
  cpus: 2
  partition: cpu
redis:
  addr: redis.sys:6379
`
	const user = `
default_image: user/img:2
spool_root: ~/my-jobs
defaults:
  cpus: 4
`
	tests := []struct {
		name                 string
		system, user         string
		env                  []string
		image, spool, addr   string
		cpus                 int
		partition, mem, time string
	}{
		{name: "defaults only", image: DefaultImage, spool: "HOME/.ferry/jobs", addr: "127.0.0.1:6379",
			cpus: 1, mem: "1G", time: "1h"},
		{name: "system file", system: system, image: "sys/img:1", spool: "/sys/spool", addr: "redis.sys:6379",
			cpus: 2, partition: "cpu", mem: "1G", time: "1h"},
		{name: "user file over system file", system: system, user: user, image: "user/img:2", spool: "HOME/my-jobs",
			addr: "redis.sys:6379", cpus: 4, partition: "cpu", mem: "1G", time: "1h"},
		{name: "env over user file", system: system, user: user,
			env:   []string{"FERRY_DEFAULT_IMAGE=env/img:3", "FERRY_SPOOL_ROOT=/env/spool", "FERRY_REDIS_ADDR=redis.env:1", "PATH=/bin"},
			image: "env/img:3", spool: "/env/spool", addr: "redis.env:1", cpus: 4, partition: "cpu", mem: "1G", time: "1h"},
		{name: "later env pair wins, empty counts as unset", system: system,
			env:   []string{"FERRY_DEFAULT_IMAGE=user/img:2", "FERRY_DEFAULT_IMAGE=env/img:3", "FERRY_SPOOL_ROOT="},
			image: "env/img:3", spool: "/sys/spool", addr: "redis.sys:6379", cpus: 2, partition: "cpu", mem: "1G", time: "1h"},
		{name: "user file alone", user: user, image: "user/img:2", spool: "HOME/my-jobs", addr: "127.0.0.1:6379",
			cpus: 4, mem: "1G", time: "1h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := layers(t, tt.system, tt.user, tt.env...)
			c, err := LoadFrom(l)
			require.NoError(t, err)
			assert.Equal(t, tt.image, c.DefaultImage)
			assert.Equal(t, strings.Replace(tt.spool, "HOME", l.Home, 1), c.SpoolRoot)
			assert.Equal(t, tt.addr, c.Redis.Addr)
			assert.Equal(t, JobDefaults{CPUs: tt.cpus, Mem: tt.mem, Time: tt.time, Partition: tt.partition}, c.Defaults)

			var want []string
			if tt.system != "" {
				want = append(want, l.System)
			}
			if tt.user != "" {
				want = append(want, l.User)
			}
			assert.Equal(t, want, c.Sources())
		})
	}
}

func TestLoadFromImagesFollowSystemDefault(t *testing.T) {
	c, err := LoadFrom(layers(t, "default_image: site/img:7\n", ""))
	require.NoError(t, err)
	assert.Equal(t, []string{"site/img:7"}, c.Images)
	require.NoError(t, c.Validate())

	// A default image chosen by the user does not allow itself.
	c, err = LoadFrom(layers(t, "", "default_image: mine/img:1\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{DefaultImage}, c.Images)
	assert.ErrorContains(t, c.Validate(), `default_image: image "mine/img:1" is not allowed on this cluster; allowed images: ferry/sandbox:latest`)
}

func TestLoadFromFiles(t *testing.T) {
	t.Run("missing files are skipped", func(t *testing.T) {
		c, err := LoadFrom(layers(t, "", ""))
		require.NoError(t, err)
		assert.Empty(t, c.Sources())
		assert.Equal(t, Default().Images, c.Images)
	})
	t.Run("a required system file must exist", func(t *testing.T) {
		l := layers(t, "", "")
		l.SystemRequired = true
		_, err := LoadFrom(l)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "FERRY_CONFIG")
		assert.Contains(t, err.Error(), l.System)
	})
	t.Run("empty and comment-only files are fine", func(t *testing.T) {
		c, err := LoadFrom(layers(t, "# nothing yet\n", "\n"))
		require.NoError(t, err)
		assert.Len(t, c.Sources(), 2)
		assert.Equal(t, DefaultImage, c.DefaultImage)
	})
	t.Run("a file that is not a mapping", func(t *testing.T) {
		_, err := LoadFrom(layers(t, "", "- images\n"))
		assert.EqualError(t, err, `~/.ferry/config.yaml line 1: want a mapping of fields such as "name: value", got a list`)
	})
	t.Run("two documents", func(t *testing.T) {
		l := layers(t, "perfmon: true\n---\nperfmon: false\n", "")
		_, err := LoadFrom(l)
		assert.EqualError(t, err, l.System+` line 3: more than one YAML document; remove the "---" separator and merge them`)
	})
	t.Run("syntax error", func(t *testing.T) {
		_, err := LoadFrom(layers(t, "", "spool_root: /x\n  bad: [\n"))
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), "~/.ferry/config.yaml line "), err.Error())
	})
}

func TestProcessLayers(t *testing.T) {
	l := processLayers([]string{"HOME=/home/ann", "FERRY_SPOOL_ROOT=/x"}, "/home/ann", false)
	assert.Equal(t, Layers{System: SystemPath, User: "/home/ann/.ferry/config.yaml", Home: "/home/ann",
		Env: []string{"HOME=/home/ann", "FERRY_SPOOL_ROOT=/x"}}, l)

	l = processLayers([]string{"FERRY_CONFIG=/srv/ferry.yaml"}, "", true)
	assert.Equal(t, "/srv/ferry.yaml", l.System)
	assert.True(t, l.SystemRequired)
	assert.Empty(t, l.User, "no home, no user file")
	assert.True(t, l.Root)
}

func TestLoad(t *testing.T) {
	home := t.TempDir()
	sys := filepath.Join(t.TempDir(), "ferry.yaml")
	require.NoError(t, os.WriteFile(sys, []byte("images: [a:1, b:2]\ndefault_image: a:1\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".ferry"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, UserPath), []byte("default_image: b:2\n"), 0o600))
	t.Setenv("HOME", home)
	t.Setenv("FERRY_CONFIG", sys)
	for _, f := range fields {
		if f.env != "" && f.env != "FERRY_CONFIG" {
			t.Setenv(f.env, "")
		}
	}

	c, err := Load()
	require.NoError(t, err)
	assert.Equal(t, []string{sys, filepath.Join(home, UserPath)}, c.Sources())
	assert.Equal(t, "b:2", c.DefaultImage)
	assert.Equal(t, filepath.Join(home, ".ferry", "jobs"), c.SpoolRoot)
	assert.NoError(t, c.Validate())

	t.Setenv("FERRY_CONFIG", filepath.Join(t.TempDir(), "typo.yaml"))
	_, err = Load()
	assert.ErrorContains(t, err, "read config named by FERRY_CONFIG")
}

func TestUnknownFields(t *testing.T) {
	t.Run("user file", func(t *testing.T) {
		_, err := LoadFrom(layers(t, "", "spool_root: /x\n\ndefualt_image: x\n"))
		assert.EqualError(t, err, `~/.ferry/config.yaml line 3: unknown field "defualt_image" (did you mean "default_image"?)`)
	})
	t.Run("system file, nested", func(t *testing.T) {
		l := layers(t, "redis:\n  addr: r:1\n  passwd: x\n", "")
		_, err := LoadFrom(l)
		assert.EqualError(t, err, l.System+` line 3: unknown field "redis.passwd"`)
	})
	t.Run("several at once", func(t *testing.T) {
		_, err := LoadFrom(layers(t, "", "foo: 1\ntracker:\n  tik: 1s\n"))
		assert.EqualError(t, err, "~/.ferry/config.yaml line 1: unknown field \"foo\"\n"+
			`~/.ferry/config.yaml line 3: unknown field "tracker.tik" (did you mean "tracker.tick"?)`)
	})
}

func TestAdminOnlyRefusedInUserFile(t *testing.T) {
	tests := []struct {
		yaml  string
		field string
		line  int
	}{
		{"images: [evil:1]\n", "images", 1},
		{"networks: [bridge]\n", "networks", 1},
		{"readonly_mounts: [/data]\n", "readonly_mounts", 1},
		{"scratch_dir: /tmp/x\n", "scratch_dir", 1},
		{"agent_socket: /tmp/a.sock\n", "agent_socket", 1},
		{"perfmon: true\n", "perfmon", 1},
		{"pids_limit: 100000\n", "pids_limit", 1},
		{"redis:\n  addr: r:1\n  password_file: /etc/pw\n", "redis.password_file", 3},
		{"spool_root: /x\nimages: []\n", "images", 2},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			l := layers(t, "", tt.yaml)
			l.System = "/etc/ferry/config.yaml"
			_, err := LoadFrom(l)
			assert.EqualError(t, err, "~/.ferry/config.yaml line "+strconv.Itoa(tt.line)+": field "+tt.field+" may only be set in /etc/ferry/config.yaml")
		})
	}
	t.Run("also through a merge key", func(t *testing.T) {
		l := layers(t, "", "<<: {perfmon: true}\n")
		l.System = "/etc/ferry/config.yaml"
		_, err := LoadFrom(l)
		assert.EqualError(t, err, "~/.ferry/config.yaml: field perfmon may only be set in /etc/ferry/config.yaml")
	})
	t.Run("allowed in the system file", func(t *testing.T) {
		c, err := LoadFrom(layers(t, "perfmon: true\nnetworks: [labnet]\npids_limit: 64\n", ""))
		require.NoError(t, err)
		assert.True(t, c.Perfmon)
		assert.Equal(t, []string{"labnet"}, c.Networks)
		assert.Equal(t, int64(64), c.PidsLimit)
	})
}

func TestEnvOverrides(t *testing.T) {
	env := []string{
		"FERRY_SCRATCH_DIR=/env/scratch",
		"FERRY_AGENT_SOCKET=/env/%n.sock",
		"FERRY_REDIS_PASSWORD_FILE=/env/pw",
		"FERRY_MAX_BUNDLE=64M",
		"FERRY_JOB_ID=not-a-setting",
	}
	t.Run("user", func(t *testing.T) {
		c, err := LoadFrom(layers(t, "", "", env...))
		require.NoError(t, err)
		assert.Equal(t, "/var/tmp/ferry", c.ScratchDir, "admin-only variable ignored")
		assert.Equal(t, "/run/ferry/agent.sock", c.AgentSocket, "admin-only variable ignored")
		assert.Equal(t, "/env/pw", c.Redis.PasswordFile)
		assert.Equal(t, Size(64<<20), c.MaxBundle)
		assert.NoError(t, c.Validate())
	})
	t.Run("root", func(t *testing.T) {
		l := layers(t, "", "", env...)
		l.Root = true
		c, err := LoadFrom(l)
		require.NoError(t, err)
		assert.Equal(t, "/env/scratch", c.ScratchDir)
		assert.Equal(t, "/env/n1.sock", c.AgentSocketFor("n1"))
	})
	t.Run("bad values name the variable", func(t *testing.T) {
		_, err := LoadFrom(layers(t, "", "", "FERRY_MAX_BUNDLE=lots", "FERRY_DEFAULT_IMAGE=ok"))
		assert.EqualError(t, err, `FERRY_MAX_BUNDLE="lots": invalid memory size "lots": want a size such as 512M or 4G`)
	})
}

func TestMaxBundleCeiling(t *testing.T) {
	const system = "max_bundle: 512M\n"
	tests := []struct {
		name    string
		user    string
		env     []string
		root    bool
		want    Size
		wantErr string
	}{
		{name: "admin value", want: 512 << 20},
		{name: "user file lowers", user: "max_bundle: 100M\n", want: 100 << 20},
		{name: "env lowers", env: []string{"FERRY_MAX_BUNDLE=1G"}, user: "max_bundle: 2G\n", want: 1 << 30,
			wantErr: "max_bundle 1G is above the cluster's cap of 512M (set in SYSTEM); it may only be lowered"},
		{name: "user file may not raise", user: "max_bundle: 1G\n", want: 1 << 30,
			wantErr: "max_bundle 1G is above the cluster's cap of 512M (set in SYSTEM); it may only be lowered"},
		{name: "root env raises", env: []string{"FERRY_MAX_BUNDLE=2G"}, root: true, want: 2 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := layers(t, system, tt.user, tt.env...)
			l.Root = tt.root
			c, err := LoadFrom(l)
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.MaxBundle)
			if tt.wantErr == "" {
				assert.NoError(t, c.Validate())
			} else {
				assert.EqualError(t, c.Validate(), strings.Replace(tt.wantErr, "SYSTEM", l.System, 1))
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := func() *Config {
		c := Default()
		c.SpoolRoot = "/home/ann/.ferry/jobs"
		return c
	}
	require.NoError(t, valid().Validate())

	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"cluster name", func(c *Config) { c.Cluster = "Ferry One" },
			[]string{`cluster "Ferry One" must be 1-31 lowercase letters, digits or '-', starting with a letter`}},
		{"unexpanded spool root", func(c *Config) { c.SpoolRoot = "~/.ferry/jobs" },
			[]string{`spool_root "~/.ferry/jobs" must be an absolute path (is HOME set?)`}},
		{"default image not allowed", func(c *Config) { c.DefaultImage = "other:1" },
			[]string{`default_image: image "other:1" is not allowed on this cluster; allowed images: ferry/sandbox:latest`}},
		{"empty allowlist", func(c *Config) { c.Images = nil }, []string{
			"images is empty: no job could run; list at least the default image",
			`default_image: image "ferry/sandbox:latest" is not allowed on this cluster; allowed images: none`}},
		{"negative size", func(c *Config) { c.MaxBundle = -1 }, []string{"max_bundle must be more than zero, got -1"}},
		{"size without unit", func(c *Config) { c.MaxBundle = 256 },
			[]string{"max_bundle is 256 bytes; write the unit for megabytes, such as 256M"}},
		{"relative paths", func(c *Config) {
			c.ScratchDir, c.AgentSocket, c.FerryBinary, c.Redis.PasswordFile = "scratch", "a.sock", "bin/ferry", "pw"
		}, []string{
			`scratch_dir "scratch" must be an absolute path`,
			`agent_socket "a.sock" must be an absolute path`,
			`ferry_binary "bin/ferry" must be an absolute path`,
			`redis.password_file "pw" must be an absolute path`}},
		{"host network", func(c *Config) { c.Networks = []string{"labnet", "host", "container:x"} }, []string{
			"networks: host would give sandboxes the node's own network; it is not allowed",
			`networks[2] "container:x" is not a Docker network name`}},
		{"mounts", func(c *Config) { c.ReadOnlyMounts = []string{"/data", "/", "rel", "/a/../b", "/x:y"} }, []string{
			"readonly_mounts: / would expose the whole node; mount the dirs jobs need",
			`readonly_mounts[2] "rel" must be a clean absolute path`,
			`readonly_mounts[3] "/a/../b" must be a clean absolute path`,
			`readonly_mounts[4] "/x:y" may not contain ':', ',' or a newline`}},
		{"limits and durations", func(c *Config) {
			c.PidsLimit, c.StopGrace, c.Tracker.Tick = 0, Duration(-time.Second), 0
			c.NodeMemReserve = -1
		}, []string{
			"pids_limit must be more than zero, got 0",
			"node_mem_reserve must not be negative, got -1",
			"stop_grace must not be negative, got -1s",
			"tracker.tick must be more than zero, got 0s"}},
		{"job defaults", func(c *Config) { c.Defaults = JobDefaults{CPUs: 0, Mem: "lots", Time: "soon", Partition: "a b"} }, []string{
			"defaults.cpus must be at least 1, got 0",
			`defaults.mem: invalid memory size "lots": want a size such as 512M or 4G`,
			`defaults.time: invalid time limit "soon": want minutes (30), HH:MM:SS, D-HH:MM:SS or a duration such as 90m`,
			`defaults.partition "a b" may not contain spaces`}},
		{"addresses", func(c *Config) { c.Redis.Addr, c.Tracker.Listen = "redis", ":x:" }, []string{
			`redis.addr "redis": want host:port`,
			`tracker.listen ":x:": want host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(c)
			assert.EqualError(t, c.Validate(), strings.Join(tt.want, "\n"))
		})
	}
}

func TestImageAllowed(t *testing.T) {
	c := Default()
	c.Images = []string{"ferry/sandbox:latest", "ferry/cuda:12"}
	assert.NoError(t, c.ImageAllowed("ferry/cuda:12"))
	assert.EqualError(t, c.ImageAllowed("ubuntu:24.04"),
		`image "ubuntu:24.04" is not allowed on this cluster; allowed images: ferry/sandbox:latest, ferry/cuda:12`)
	assert.EqualError(t, c.ImageAllowed("ferry/sandbox"),
		`image "ferry/sandbox" is not allowed on this cluster (did you mean ferry/sandbox:latest?); allowed images: ferry/sandbox:latest, ferry/cuda:12`)
}

func TestAgentSocketFor(t *testing.T) {
	c := Default()
	assert.Equal(t, "/run/ferry/agent.sock", c.AgentSocketFor("n1"))
	c.AgentSocket = "/run/ferry/%n/agent.sock"
	assert.Equal(t, "/run/ferry/worker-3/agent.sock", c.AgentSocketFor("worker-3"))
	assert.Equal(t, "/run/ferry/.._x/agent.sock", c.AgentSocketFor("../x"))
	assert.Equal(t, "/run/ferry/_/agent.sock", c.AgentSocketFor(".."))
}

func TestDisplayAndExpand(t *testing.T) {
	assert.Equal(t, "~/.ferry/config.yaml", displayPath("/home/ann/.ferry/config.yaml", "/home/ann"))
	assert.Equal(t, "/home/annette/x", displayPath("/home/annette/x", "/home/ann"))
	assert.Equal(t, "/etc/ferry/config.yaml", displayPath("/etc/ferry/config.yaml", ""))
	assert.Equal(t, "/home/ann/jobs", expandHome("~/jobs", "/home/ann"))
	assert.Equal(t, "/home/ann", expandHome("~", "/home/ann"))
	assert.Equal(t, "~bob/jobs", expandHome("~bob/jobs", "/home/ann"))
	assert.Equal(t, "~/jobs", expandHome("~/jobs", ""))
}
