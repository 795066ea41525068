package docker

import (
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/sandbox"
)

// baseSpec is what the agent hands the engine for an ordinary job: the
// policy's decision with /work and /out pinned under the mount root.
func baseSpec() sandbox.ContainerSpec {
	return sandbox.ContainerSpec{
		Name:       "ferry-42-01jd8x3k",
		Hostname:   "w1",
		Image:      "ferry/python:3.12",
		Cmd:        []string{"python", "train.py"},
		Env:        []string{"HOME=/tmp", "FERRY_JOB_ID=01jd8x3k5m7n9p1q3r5s7t9v2w"},
		User:       "2101:2101",
		WorkingDir: "/work",
		Mounts: []sandbox.Mount{
			{Source: "/run/ferry/mnt/w1/ferry-42-01jd8x3k/work", Target: "/work", ReadOnly: true},
			{Source: "/run/ferry/mnt/w1/ferry-42-01jd8x3k/out", Target: "/out"},
			{Source: "/opt/datasets", Target: "/opt/datasets", ReadOnly: true},
		},
		Network:     "none",
		NanoCPUs:    4e9,
		MemoryBytes: 8 << 30,
		PidsLimit:   4096,
		TmpfsSize:   512 << 20,
		Labels: map[string]string{
			sandbox.LabelJob: "01jd8x3k5m7n9p1q3r5s7t9v2w", sandbox.LabelSlurmJob: "42",
			sandbox.LabelUID: "2101", sandbox.LabelNode: "w1",
		},
	}
}

func TestContainerConfig(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *sandbox.ContainerSpec)
		check func(t *testing.T, cfg *container.Config, host *container.HostConfig)
	}{
		{
			name: "runs as the caller, with the spec's image, command and environment",
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, "2101:2101", cfg.User)
				assert.Equal(t, "ferry/python:3.12", cfg.Image)
				assert.Equal(t, "w1", cfg.Hostname)
				assert.Equal(t, "/work", cfg.WorkingDir)
				assert.Equal(t, []string{"python", "train.py"}, []string(cfg.Cmd))
				assert.Equal(t, []string{"HOME=/tmp", "FERRY_JOB_ID=01jd8x3k5m7n9p1q3r5s7t9v2w"}, cfg.Env)
				assert.Empty(t, cfg.Entrypoint, "the image's entrypoint is not replaced")
				assert.True(t, cfg.AttachStdout)
				assert.True(t, cfg.AttachStderr)
				assert.False(t, cfg.OpenStdin)
				assert.False(t, cfg.Tty)
				assert.Equal(t, "SIGTERM", cfg.StopSignal)
			},
		},
		{
			name: "labels find the container again",
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, map[string]string{
					"ferry.job": "01jd8x3k5m7n9p1q3r5s7t9v2w", "ferry.slurm_job": "42",
					"ferry.uid": "2101", "ferry.node": "w1",
				}, cfg.Labels)
			},
		},
		{
			name: "locked down",
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.False(t, host.Privileged, "never privileged")
				assert.True(t, host.ReadonlyRootfs, "read-only root")
				assert.Equal(t, []string{"ALL"}, []string(host.CapDrop))
				assert.Empty(t, host.CapAdd, "no capability without the cluster's perfmon")
				assert.Equal(t, []string{"no-new-privileges"}, host.SecurityOpt)
				assert.Empty(t, host.Devices, "no host devices")
				assert.Empty(t, host.DeviceCgroupRules)
				assert.Empty(t, host.DeviceRequests, "no GPUs without an allocation")
				assert.Empty(t, host.Binds, "mounts go through Mounts only")
				assert.Empty(t, host.VolumesFrom)
				assert.False(t, host.PublishAllPorts)
				assert.Empty(t, host.PortBindings)
				assert.Equal(t, container.IPCModePrivate, host.IpcMode)
				assert.Empty(t, string(host.PidMode), "own pid namespace")
				assert.Empty(t, string(host.UTSMode), "own uts namespace")
				assert.Empty(t, string(host.UsernsMode))
				assert.Empty(t, string(host.CgroupnsMode), "the daemon's default (private on cgroup v2)")
				assert.Empty(t, host.Sysctls)
				require.NotNil(t, host.Init)
				assert.True(t, *host.Init, "an init reaps the job's zombies")
			},
		},
		{
			name: "no network",
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, container.NetworkMode("none"), host.NetworkMode)
				assert.True(t, cfg.NetworkDisabled)
			},
		},
		{
			name:  "an allowed named network",
			setup: func(s *sandbox.ContainerSpec) { s.Network = "ferry-net" },
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, container.NetworkMode("ferry-net"), host.NetworkMode)
				assert.False(t, cfg.NetworkDisabled)
			},
		},
		{
			name:  "perfmon is the only capability added, when the policy says so",
			setup: func(s *sandbox.ContainerSpec) { s.CapAdd = []string{"PERFMON"} },
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, []string{"PERFMON"}, []string(host.CapAdd))
				assert.Equal(t, []string{"ALL"}, []string(host.CapDrop))
				assert.False(t, host.Privileged)
			},
		},
		{
			name: "cpus, memory without extra swap, pids",
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, int64(4e9), host.NanoCPUs)
				assert.Equal(t, int64(8<<30), host.Memory)
				assert.Equal(t, int64(8<<30), host.MemorySwap, "swap cannot extend the memory limit")
				require.NotNil(t, host.PidsLimit)
				assert.Equal(t, int64(4096), *host.PidsLimit)
				assert.Zero(t, host.CPUShares)
				assert.Empty(t, host.CpusetCpus)
				assert.Nil(t, host.OomKillDisable)
			},
		},
		{
			name: "/tmp is a bounded tmpfs",
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, map[string]string{"/tmp": "rw,nosuid,nodev,mode=1777,size=536870912"}, host.Tmpfs)
			},
		},
		{
			name:  "/tmp without a size cap when none is configured",
			setup: func(s *sandbox.ContainerSpec) { s.TmpfsSize = 0 },
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, map[string]string{"/tmp": "rw,nosuid,nodev,mode=1777"}, host.Tmpfs)
			},
		},
		{
			name: "bind mounts keep their read-only flags and are not recursive",
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				nonRec := &mount.BindOptions{NonRecursive: true}
				assert.Equal(t, []mount.Mount{
					{Type: mount.TypeBind, Source: "/run/ferry/mnt/w1/ferry-42-01jd8x3k/work", Target: "/work", ReadOnly: true, BindOptions: nonRec},
					{Type: mount.TypeBind, Source: "/run/ferry/mnt/w1/ferry-42-01jd8x3k/out", Target: "/out", ReadOnly: false, BindOptions: nonRec},
					{Type: mount.TypeBind, Source: "/opt/datasets", Target: "/opt/datasets", ReadOnly: true, BindOptions: nonRec},
				}, host.Mounts)
			},
		},
		{
			name:  "GPUs through a device request for exactly the allocated count",
			setup: func(s *sandbox.ContainerSpec) { s.GPUs = 2 },
			check: func(t *testing.T, cfg *container.Config, host *container.HostConfig) {
				assert.Equal(t, []container.DeviceRequest{{Driver: "nvidia", Count: 2, Capabilities: [][]string{{"gpu"}}}},
					host.DeviceRequests)
				assert.Empty(t, host.Devices, "no device nodes beyond the request")
				assert.False(t, host.Privileged)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := baseSpec()
			if tt.setup != nil {
				tt.setup(&spec)
			}
			cfg, host := containerConfig(spec)
			require.NotNil(t, cfg)
			require.NotNil(t, host)
			tt.check(t, cfg, host)
		})
	}
}

// The translation copies: changing the spec afterwards does not change the
// request (the pids limit is a pointer).
func TestContainerConfigDoesNotAlias(t *testing.T) {
	spec := baseSpec()
	_, host := containerConfig(spec)
	spec.PidsLimit = 0
	assert.Equal(t, int64(4096), *host.PidsLimit)
}
