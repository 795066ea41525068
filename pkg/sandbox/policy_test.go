package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// otherUID owns what the caller must not be able to use.
const otherUID = 12345

// fixture is one caller's world on worker w1: a home with a job dir, a
// scratch dir, the Slurm allocation of the job and the request that
// `ferry sandbox run` would send for it.
type fixture struct {
	uid, gid    int
	id          job.ID
	home        string
	jobDir      string // <home>/.ferry/jobs/<id>
	outputs     string
	scratchRoot string
	scratch     string // <scratchRoot>/<id>.xyz
	policy      *Policy
	alloc       Allocation
	peer        Peer
	req         Request
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{uid: os.Getuid(), gid: os.Getgid(), id: job.NewID(time.Now())}
	fx.home = t.TempDir()
	fx.jobDir = filepath.Join(fx.home, ".ferry", "jobs", string(fx.id))
	fx.outputs = filepath.Join(fx.jobDir, job.OutputsDir)
	require.NoError(t, os.MkdirAll(fx.outputs, 0o700))
	fx.scratchRoot = filepath.Join(t.TempDir(), "scratch")
	fx.scratch = filepath.Join(fx.scratchRoot, string(fx.id)+".xyz")
	require.NoError(t, os.MkdirAll(fx.scratch, 0o700))
	fx.policy = &Policy{
		Node:           "w1",
		Images:         []string{"ferry/python:3.12", "ferry/r:4.4"},
		Networks:       []string{"ferry-net"},
		ReadOnlyMounts: []string{"/opt/datasets", "/opt/models"},
		ScratchDir:     fx.scratchRoot,
		PidsLimit:      4096,
		TmpfsSize:      512 << 20,
		HomeOf: func(uid int) (string, error) {
			if uid == fx.uid {
				return fx.home, nil
			}
			return "", fmt.Errorf("user: unknown userid %d", uid)
		},
	}
	fx.alloc = Allocation{
		SlurmJobID: "42", FerryID: fx.id, UID: fx.uid, State: "RUNNING",
		Nodes: []string{"w1"}, CPUs: 4, MemBytes: 8 << 30, GPUs: 1,
	}
	fx.peer = Peer{UID: fx.uid, GID: fx.gid, PID: 4242}
	fx.req = Request{
		SlurmJobID: "42",
		JobDir:     fx.jobDir,
		Scratch:    fx.scratch,
		Image:      "ferry/python:3.12",
		Command:    []string{"python", "train.py", "--epochs", "3"},
		Env: map[string]string{
			"FERRY_PARAMS": `{"lr":0.1}`,
			"MY_VAR":       "x=y",
			"FERRY_JOB_ID": "someone-else", // the agent sets its own
			"FERRY_NODE":   "w9",
			"HOME":         "/root",
		},
	}
	return fx
}

// wantSpec is the spec the policy must decide for the fixture's request.
func (fx *fixture) wantSpec(t *testing.T) ContainerSpec {
	t.Helper()
	realJobDir, err := filepath.EvalSymlinks(fx.jobDir)
	require.NoError(t, err)
	return ContainerSpec{
		Name:     "ferry-42-" + fx.id.Short(),
		Hostname: "w1",
		Image:    "ferry/python:3.12",
		Cmd:      []string{"python", "train.py", "--epochs", "3"},
		Env: []string{
			"HOME=/tmp",
			"FERRY_JOB_ID=" + string(fx.id),
			"FERRY_SLURM_JOB_ID=42",
			"FERRY_OUTPUTS=/out",
			"FERRY_PARAMS_FILE=/work/ferry_params.json",
			"FERRY_NODE=w1",
			"FERRY_CPUS=4",
			`FERRY_PARAMS={"lr":0.1}`,
			"MY_VAR=x=y",
		},
		User:       fmt.Sprintf("%d:%d", fx.uid, fx.gid),
		WorkingDir: "/work",
		Mounts: []Mount{
			{Source: fx.scratch, Target: "/work", ReadOnly: true}, // the project is read-only
			{Source: filepath.Join(realJobDir, "outputs"), Target: "/out"},
			{Source: "/opt/datasets", Target: "/opt/datasets", ReadOnly: true},
			{Source: "/opt/models", Target: "/opt/models", ReadOnly: true},
		},
		Network:     "none",
		NanoCPUs:    4e9,
		MemoryBytes: 8 << 30,
		PidsLimit:   4096,
		GPUs:        1,
		TmpfsSize:   512 << 20,
		Labels: map[string]string{
			LabelJob:      string(fx.id),
			LabelSlurmJob: "42",
			LabelUID:      fmt.Sprint(fx.uid),
			LabelNode:     "w1",
		},
	}
}

// wantPinnedSpec is wantSpec as the agent hands it to the engine: /work
// and /out come from the binder's mount points, not from the paths the
// user named.
func (fx *fixture) wantPinnedSpec(t *testing.T) ContainerSpec {
	t.Helper()
	s := fx.wantSpec(t)
	s.Mounts[0].Source = fakeMountPoint(s.Name, "work")
	s.Mounts[1].Source = fakeMountPoint(s.Name, "out")
	return s
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns a dir to another uid to show that it is refused")
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	requireRoot(t)
	require.NoError(t, os.Lchown(path, uid, uid))
}

func TestPolicyDecide(t *testing.T) {
	tests := []struct {
		name string
		// setup changes the fixture's world, request, allocation or policy.
		setup func(t *testing.T, fx *fixture)
		// want adjusts the expected spec of an allowed request; nil with
		// refused empty means the spec is exactly fx.wantSpec.
		want    func(fx *fixture, s *ContainerSpec)
		refused string // substring of the refusal's reason; {id} and {uid} are the fixture's
	}{
		{name: "allowed"},
		{
			name:  "configuring job is allowed",
			setup: func(t *testing.T, fx *fixture) { fx.alloc.State = "CONFIGURING" },
		},
		{
			name:  "job spanning several nodes is allowed on each",
			setup: func(t *testing.T, fx *fixture) { fx.alloc.Nodes = []string{"w0", "w1", "w2"} },
		},
		{
			name: "resources come from Slurm, not from what the job asked for",
			setup: func(t *testing.T, fx *fixture) {
				fx.alloc.CPUs, fx.alloc.MemBytes, fx.alloc.GPUs = 16, 64<<30, 0
			},
			want: func(fx *fixture, s *ContainerSpec) {
				s.NanoCPUs, s.MemoryBytes, s.GPUs = 16e9, 64<<30, 0
				s.Env[6] = "FERRY_CPUS=16"
			},
		},
		{
			name: "memory is capped at the node's less the reserve",
			setup: func(t *testing.T, fx *fixture) {
				fx.policy.NodeMemory, fx.policy.MemReserve = 6<<30, 1<<30
			},
			want: func(fx *fixture, s *ContainerSpec) { s.MemoryBytes = 5 << 30 },
		},
		{
			name: "no memory from Slurm: the node's less the reserve",
			setup: func(t *testing.T, fx *fixture) {
				fx.alloc.MemBytes = 0
				fx.policy.NodeMemory, fx.policy.MemReserve = 16<<30, 1<<30
			},
			want: func(fx *fixture, s *ContainerSpec) { s.MemoryBytes = 15 << 30 },
		},
		{
			name: "an allotment under the cap stands",
			setup: func(t *testing.T, fx *fixture) {
				fx.policy.NodeMemory, fx.policy.MemReserve = 16<<30, 1<<30
			},
		},
		{
			name:  "an allocation without cpus still gets one",
			setup: func(t *testing.T, fx *fixture) { fx.alloc.CPUs = 0 },
			want: func(fx *fixture, s *ContainerSpec) {
				s.NanoCPUs = 1e9
				s.Env[6] = "FERRY_CPUS=0"
			},
		},
		{
			name:  "perfmon is the only capability, and only when the cluster enables it",
			setup: func(t *testing.T, fx *fixture) { fx.policy.Perfmon = true },
			want:  func(fx *fixture, s *ContainerSpec) { s.CapAdd = []string{"PERFMON"} },
		},
		{
			name:  "allowed named network",
			setup: func(t *testing.T, fx *fixture) { fx.req.Network = "ferry-net" },
			want:  func(fx *fixture, s *ContainerSpec) { s.Network = "ferry-net" },
		},
		{
			name:  "network none asked explicitly",
			setup: func(t *testing.T, fx *fixture) { fx.req.Network = "none" },
		},
		{
			name:  "no read-only mounts configured",
			setup: func(t *testing.T, fx *fixture) { fx.policy.ReadOnlyMounts = nil },
			want:  func(fx *fixture, s *ContainerSpec) { s.Mounts = s.Mounts[:2] },
		},
		{
			name: "job dir named through a symlink inside home is resolved",
			setup: func(t *testing.T, fx *fixture) {
				link := filepath.Join(fx.home, string(fx.id))
				require.NoError(t, os.Symlink(fx.jobDir, link))
				fx.req.JobDir = link
			},
		},
		{
			name: "scratch with dot-dot that cleans back to this job's scratch",
			setup: func(t *testing.T, fx *fixture) {
				fx.req.Scratch = filepath.Join(fx.scratchRoot, "x") + "/../" + string(fx.id) + ".xyz"
			},
		},

		// What a request may never ask for.
		{
			name:    "privileged",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Privileged = true },
			refused: "privileged containers are never allowed",
		},
		{
			name:    "cap_add",
			setup:   func(t *testing.T, fx *fixture) { fx.req.CapAdd = []string{"SYS_ADMIN", "NET_RAW"} },
			refused: "extra capabilities (SYS_ADMIN,NET_RAW) are never granted to a job",
		},
		{
			name:    "perfmon asked by the request",
			setup:   func(t *testing.T, fx *fixture) { fx.policy.Perfmon = true; fx.req.CapAdd = []string{"PERFMON"} },
			refused: "extra capabilities (PERFMON) are never granted",
		},
		{
			name:    "host path mount",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Mounts = []Mount{{Source: "/etc", Target: "/host-etc"}} },
			refused: "host path mounts are not allowed (asked for /etc)",
		},
		{
			name:    "user override",
			setup:   func(t *testing.T, fx *fixture) { fx.req.User = "0:0" },
			refused: "the container user is not chosen by the request",
		},

		// The Slurm job: running, here, for this caller, a ferry job.
		{
			name:    "another user's job",
			setup:   func(t *testing.T, fx *fixture) { fx.alloc.UID = fx.uid + 1 },
			refused: "not to the caller (uid {uid})",
		},
		{
			name:    "pending job",
			setup:   func(t *testing.T, fx *fixture) { fx.alloc.State = "PENDING" },
			refused: "Slurm job 42 is pending, not running",
		},
		{
			name:    "completed job",
			setup:   func(t *testing.T, fx *fixture) { fx.alloc.State = "COMPLETED" },
			refused: "Slurm job 42 is completed, not running",
		},
		{
			name:    "job running on another node",
			setup:   func(t *testing.T, fx *fixture) { fx.alloc.Nodes = []string{"w2", "w3"} },
			refused: "Slurm job 42 runs on w2,w3, not on this node (w1)",
		},
		{
			name:    "not a ferry job",
			setup:   func(t *testing.T, fx *fixture) { fx.alloc.FerryID = "" },
			refused: "Slurm job 42 is not a ferry job",
		},

		// The job dir.
		{
			name: "job dir outside the caller's home",
			setup: func(t *testing.T, fx *fixture) {
				fx.req.JobDir = filepath.Join(t.TempDir(), string(fx.id))
				require.NoError(t, os.MkdirAll(filepath.Join(fx.req.JobDir, "outputs"), 0o700))
			},
			refused: "is outside the caller's spool",
		},
		{
			name:    "job dir is the home itself",
			setup:   func(t *testing.T, fx *fixture) { fx.req.JobDir = fx.home },
			refused: "is outside the caller's spool",
		},
		{
			name: "job dir climbing out of home with dot-dot",
			setup: func(t *testing.T, fx *fixture) {
				outside := filepath.Join(t.TempDir(), string(fx.id))
				require.NoError(t, os.MkdirAll(outside, 0o700))
				rel, err := filepath.Rel(fx.home, outside)
				require.NoError(t, err)
				fx.req.JobDir = fx.home + "/" + rel
			},
			refused: "is outside the caller's spool",
		},
		{
			name: "job dir named by another job id",
			setup: func(t *testing.T, fx *fixture) {
				other := filepath.Join(fx.home, ".ferry", "jobs", string(job.NewID(time.Now())))
				require.NoError(t, os.MkdirAll(filepath.Join(other, "outputs"), 0o700))
				fx.req.JobDir = other
			},
			refused: "does not belong to ferry job {id}",
		},
		{
			name:    "job dir owned by another uid",
			setup:   func(t *testing.T, fx *fixture) { chown(t, fx.jobDir, otherUID) },
			refused: "is not owned by uid {uid}",
		},
		{
			name: "job dir as a symlink that points outside home",
			setup: func(t *testing.T, fx *fixture) {
				outside := filepath.Join(t.TempDir(), string(fx.id))
				require.NoError(t, os.MkdirAll(filepath.Join(outside, "outputs"), 0o700))
				link := filepath.Join(fx.home, ".ferry", "jobs", "link")
				require.NoError(t, os.Symlink(outside, link))
				fx.req.JobDir = link
			},
			refused: "is outside the caller's spool",
		},
		{
			name:    "relative job dir",
			setup:   func(t *testing.T, fx *fixture) { fx.req.JobDir = ".ferry/jobs/" + string(fx.id) },
			refused: "is not an absolute path",
		},
		{
			name:    "no job dir",
			setup:   func(t *testing.T, fx *fixture) { fx.req.JobDir = "" },
			refused: `job dir "" is not an absolute path`,
		},
		{
			name:    "job dir that does not exist",
			setup:   func(t *testing.T, fx *fixture) { require.NoError(t, os.RemoveAll(fx.jobDir)) },
			refused: "no such file or directory",
		},
		{
			name: "caller without a home",
			setup: func(t *testing.T, fx *fixture) {
				fx.policy.HomeOf = func(int) (string, error) { return "", errors.New("unknown user") }
			},
			refused: "no home dir for uid {uid}: unknown user",
		},
		{
			name: "outputs is a symlink",
			setup: func(t *testing.T, fx *fixture) {
				require.NoError(t, os.Remove(fx.outputs))
				require.NoError(t, os.Symlink(t.TempDir(), fx.outputs))
			},
			refused: "outputs is not a directory",
		},
		{
			name:    "outputs missing",
			setup:   func(t *testing.T, fx *fixture) { require.NoError(t, os.Remove(fx.outputs)) },
			refused: "outputs: no such file or directory",
		},
		{
			name:    "outputs owned by another uid",
			setup:   func(t *testing.T, fx *fixture) { chown(t, fx.outputs, otherUID) },
			refused: "outputs is not owned by uid {uid}",
		},

		// The scratch dir.
		{
			name: "scratch not under the scratch root",
			setup: func(t *testing.T, fx *fixture) {
				fx.req.Scratch = filepath.Join(t.TempDir(), string(fx.id)+".xyz")
				require.NoError(t, os.Mkdir(fx.req.Scratch, 0o700))
			},
			refused: "is not this job's scratch under",
		},
		{
			name: "scratch named for another job",
			setup: func(t *testing.T, fx *fixture) {
				fx.req.Scratch = filepath.Join(fx.scratchRoot, string(job.NewID(time.Now()))+".abc")
				require.NoError(t, os.Mkdir(fx.req.Scratch, 0o700))
			},
			refused: "is not this job's scratch under",
		},
		{
			name:    "scratch named by the bare job id",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Scratch = filepath.Join(fx.scratchRoot, string(fx.id)) },
			refused: "is not this job's scratch under",
		},
		{
			name: "scratch escaping the root with dot-dot",
			setup: func(t *testing.T, fx *fixture) {
				fx.req.Scratch = fx.scratch + "/../../" + string(fx.id) + ".xyz"
			},
			refused: "is not this job's scratch under",
		},
		{
			name:    "scratch reaching /etc with dot-dot",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Scratch = fx.scratch + "/../../../../../../etc" },
			refused: "is not this job's scratch under",
		},
		{
			name: "scratch nested below this job's scratch",
			setup: func(t *testing.T, fx *fixture) {
				fx.req.Scratch = filepath.Join(fx.scratch, string(fx.id)+".sub")
				require.NoError(t, os.Mkdir(fx.req.Scratch, 0o700))
			},
			refused: "is not this job's scratch under",
		},
		{
			name:    "relative scratch",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Scratch = string(fx.id) + ".xyz" },
			refused: "is not this job's scratch under",
		},
		{
			name: "scratch is a symlink",
			setup: func(t *testing.T, fx *fixture) {
				fx.req.Scratch = filepath.Join(fx.scratchRoot, string(fx.id)+".lnk")
				require.NoError(t, os.Symlink("/etc", fx.req.Scratch))
			},
			refused: ".lnk is not a directory",
		},
		{
			name:    "scratch owned by another uid",
			setup:   func(t *testing.T, fx *fixture) { chown(t, fx.scratch, otherUID) },
			refused: ".xyz is not owned by uid {uid}",
		},

		// What the user chooses, within the cluster's rules.
		{
			name:    "image off the allowlist",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Image = "evil/miner:latest" },
			refused: `image "evil/miner:latest" is not on this cluster's allowlist (ferry/python:3.12, ferry/r:4.4)`,
		},
		{
			name:    "no image",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Image = "" },
			refused: `image "" is not on this cluster's allowlist`,
		},
		{
			name:    "network not allowed",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Network = "host" },
			refused: `network "host" is not allowed on this cluster (allowed: ferry-net)`,
		},
		{
			name: "no network allowed at all",
			setup: func(t *testing.T, fx *fixture) {
				fx.policy.Networks = nil
				fx.req.Network = "bridge"
			},
			refused: `network "bridge" is not allowed on this cluster (allowed: none)`,
		},
		{
			name:    "empty command",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Command = nil },
			refused: "no command",
		},
		{
			name:    "invalid env var name",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Env["BAD-NAME"] = "1" },
			refused: `invalid environment variable "BAD-NAME"`,
		},
		{
			name:    "env var name starting with a digit",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Env["1X"] = "1" },
			refused: `invalid environment variable "1X"`,
		},
		{
			name:    "env var smuggling a second variable",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Env["A=B"] = "1" },
			refused: `invalid environment variable "A=B"`,
		},
		{
			name:    "env value with a NUL byte",
			setup:   func(t *testing.T, fx *fixture) { fx.req.Env["MY_VAR"] = "a\x00b" },
			refused: `invalid environment variable "MY_VAR"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			if tt.setup != nil {
				tt.setup(t, fx)
			}
			spec, err := fx.policy.Decide(fx.req, fx.peer, fx.alloc)
			if tt.refused != "" {
				require.Error(t, err)
				var r *Refusal
				require.ErrorAs(t, err, &r, "a policy verdict is a *Refusal")
				want := strings.NewReplacer("{id}", string(fx.id), "{uid}", fmt.Sprint(fx.uid)).Replace(tt.refused)
				assert.Contains(t, r.Reason, want)
				assert.Equal(t, "refused: "+r.Reason, err.Error())
				assert.True(t, IsRefusal(err))
				assert.Zero(t, spec, "a refused request gets no spec")
				return
			}
			require.NoError(t, err)
			want := fx.wantSpec(t)
			if tt.want != nil {
				tt.want(fx, &want)
			}
			assert.Equal(t, want, spec)

			// What the agent pins: the same dirs, each named beneath its
			// resolved root, so that the binder can open them without
			// following a symlink.
			_, dirs, err := fx.policy.decide(fx.req, fx.peer, fx.alloc)
			require.NoError(t, err)
			assert.Equal(t, fx.wantBinds(t), dirs.binds)
			assert.Equal(t, filepath.Base(fx.scratch), dirs.scratchName)
			assert.Equal(t, fx.wantBinds(t)[0].Root, dirs.scratchRoot)
			assert.Equal(t, fx.uid, dirs.uid)
		})
	}
}

// TestPolicyDecideLockdown checks, field by field, what the allowed spec
// grants, so a failure names the field that grew.
func TestPolicyDecideLockdown(t *testing.T) {
	fx := newFixture(t)
	fx.req.Network = ""
	spec, err := fx.policy.Decide(fx.req, fx.peer, fx.alloc)
	require.NoError(t, err)

	assert.Equal(t, fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), spec.User, "runs as the caller's kernel uid:gid")
	assert.Equal(t, "none", spec.Network)
	assert.Empty(t, spec.CapAdd)
	assert.Equal(t, int64(4096), spec.PidsLimit)
	assert.Equal(t, int64(4e9), spec.NanoCPUs)
	assert.Equal(t, int64(8<<30), spec.MemoryBytes)
	assert.Equal(t, 1, spec.GPUs)

	// Exactly: the project read-only at /work, this job's outputs writable
	// at /out, the cluster's read-only mounts at their own path.
	byTarget := map[string]Mount{}
	for _, m := range spec.Mounts {
		_, dup := byTarget[m.Target]
		assert.False(t, dup, "two mounts at %s", m.Target)
		byTarget[m.Target] = m
	}
	assert.Equal(t, map[string]Mount{
		"/work":         {Source: fx.scratch, Target: "/work", ReadOnly: true},
		"/out":          {Source: fx.outputs, Target: "/out"},
		"/opt/datasets": {Source: "/opt/datasets", Target: "/opt/datasets", ReadOnly: true},
		"/opt/models":   {Source: "/opt/models", Target: "/opt/models", ReadOnly: true},
	}, byTarget)
	var writable []string
	for _, m := range spec.Mounts {
		if !m.ReadOnly {
			writable = append(writable, m.Source)
		}
	}
	assert.Equal(t, []string{fx.outputs}, writable, "the only writable host path is the job's outputs dir")

	env := map[string]string{}
	for _, kv := range spec.Env {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, kv)
		_, dup := env[k]
		assert.False(t, dup, "%s is set twice", k)
		env[k] = v
	}
	assert.Equal(t, "/tmp", env["HOME"])
	assert.Equal(t, `{"lr":0.1}`, env["FERRY_PARAMS"])
	assert.Equal(t, string(fx.id), env["FERRY_JOB_ID"], "FERRY_* from the request is dropped")
	assert.Equal(t, "w1", env["FERRY_NODE"])
	assert.Equal(t, "x=y", env["MY_VAR"])

	assert.Equal(t, map[string]string{
		"ferry.job": string(fx.id), "ferry.slurm_job": "42",
		"ferry.uid": fmt.Sprint(os.Getuid()), "ferry.node": "w1",
	}, spec.Labels)
}

func TestCheckJobDirWithoutID(t *testing.T) {
	// The epilog checks a job dir it only knows by path.
	fx := newFixture(t)
	got, err := CheckJobDir(fx.jobDir, fx.home, fx.uid, "")
	require.NoError(t, err)
	want, err := filepath.EvalSymlinks(fx.jobDir)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = CheckJobDir("/etc", fx.home, fx.uid, "")
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("refused: job dir /etc is outside the caller's spool (%s)", fx.home), err.Error())
}

func TestIsRefusal(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"refusal", &Refusal{Reason: "no"}, true},
		{"wrapped refusal", fmt.Errorf("launch: %w", &Refusal{Reason: "no"}), true},
		{"other error", errors.New("refused: looks like one but is not"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, IsRefusal(tt.err))
		})
	}
}

// A named cluster labels its containers, so that its agents and epilog
// find them and no other cluster's on the same Docker Engine.
func TestPolicyDecideClusterLabel(t *testing.T) {
	fx := newFixture(t)
	spec, err := fx.policy.Decide(fx.req, fx.peer, fx.alloc)
	require.NoError(t, err)
	assert.NotContains(t, spec.Labels, LabelCluster, "no cluster named: no label")

	fx.policy.Cluster = "course-a"
	spec, err = fx.policy.Decide(fx.req, fx.peer, fx.alloc)
	require.NoError(t, err)
	assert.Equal(t, "course-a", spec.Labels[LabelCluster])
	assert.Equal(t, "w1", spec.Labels[LabelNode])
}
