package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/lazyre"
)

// Peer is the caller, as the kernel reports it (SO_PEERCRED).
type Peer struct {
	UID, GID, PID int
}

// Allocation is what Slurm says about a job, asked by the agent itself.
type Allocation struct {
	SlurmJobID string
	FerryID    job.ID // from the job comment
	UID        int
	State      string   // raw Slurm state, e.g. RUNNING
	Nodes      []string // expanded node names
	CPUs       int
	MemBytes   int64
	GPUs       int
	// Array is set for a task of a job array (a sweep): its comment names
	// the sweep, and each task has a job dir of its own.
	Array bool
}

// Policy is the admin's rules for sandboxes on one worker.
type Policy struct {
	// Cluster labels every container (LabelCluster); Node is the Slurm
	// node the agent serves.
	Cluster        string
	Node           string
	Images         []string
	Networks       []string
	ReadOnlyMounts []string
	ScratchDir     string
	Perfmon        bool
	PidsLimit      int64
	TmpfsSize      int64
	// NodeMemory is the worker's memory (0: unknown), MemReserve what a
	// sandbox leaves of it to the node's daemons: see memLimit.
	NodeMemory int64
	MemReserve int64
	// HomeOf returns a user's home dir; the job dir must lie under it.
	// Defaults to the passwd database.
	HomeOf func(uid int) (string, error)
}

// Refusal is a request the policy turned down. Its message is shown to the
// user in the job's log and result.json, and logged by the agent.
type Refusal struct {
	Reason string
	// Ending says the request was turned down because Slurm no longer
	// runs the job (a scancel or the time limit got there first): not a
	// fault of the job, which is being stopped.
	Ending bool
}

func (r *Refusal) Error() string { return "refused: " + r.Reason }

func refuse(format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

// IsRefusal reports whether err is a policy refusal.
func IsRefusal(err error) bool {
	var r *Refusal
	return errors.As(err, &r)
}

var envKeyRE = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Decide turns a request from peer into a container spec, or refuses it.
// alloc is what Slurm said about req.SlurmJobID.
//
// The spec's /work and /out sources are the paths the policy checked. The
// agent does not hand those paths to Docker: it pins the directories they
// name (see Binder) and gives Docker the pinned mount points instead.
func (p *Policy) Decide(req Request, peer Peer, alloc Allocation) (ContainerSpec, error) {
	spec, _, err := p.decide(req, peer, alloc)
	return spec, err
}

// runDirs are the host directories of one allowed run, as the agent pins
// and cleans them up: each named beneath a trusted root.
type runDirs struct {
	binds []BindSource // /work (the scratch dir) and /out (the outputs dir)
	// the scratch dir: scratchName directly in scratchRoot, owned by uid
	scratchRoot, scratchName string
	uid                      int
}

func (p *Policy) decide(req Request, peer Peer, alloc Allocation) (ContainerSpec, runDirs, error) {
	if req.Privileged {
		return ContainerSpec{}, runDirs{}, refuse("privileged containers are never allowed")
	}
	if len(req.CapAdd) > 0 {
		return ContainerSpec{}, runDirs{}, refuse("extra capabilities (%s) are never granted to a job", strings.Join(req.CapAdd, ","))
	}
	if len(req.Mounts) > 0 {
		return ContainerSpec{}, runDirs{}, refuse("host path mounts are not allowed (asked for %s)", req.Mounts[0].Source)
	}
	if req.User != "" {
		return ContainerSpec{}, runDirs{}, refuse("the container user is not chosen by the request: it is always the caller's uid")
	}
	// Slurm: the job runs, here, for this caller.
	if alloc.UID != peer.UID {
		return ContainerSpec{}, runDirs{}, refuse("Slurm job %s belongs to uid %d, not to the caller (uid %d)", req.SlurmJobID, alloc.UID, peer.UID)
	}
	if alloc.State != "RUNNING" && alloc.State != "CONFIGURING" {
		return ContainerSpec{}, runDirs{}, &Refusal{Ending: true,
			Reason: fmt.Sprintf("Slurm job %s is %s, not running", req.SlurmJobID, strings.ToLower(alloc.State))}
	}
	if !slices.Contains(alloc.Nodes, p.Node) {
		return ContainerSpec{}, runDirs{}, refuse("Slurm job %s runs on %s, not on this node (%s)", req.SlurmJobID, strings.Join(alloc.Nodes, ","), p.Node)
	}
	if alloc.FerryID == "" {
		return ContainerSpec{}, runDirs{}, refuse("Slurm job %s is not a ferry job (its comment has no ferry id)", req.SlurmJobID)
	}
	// The job dir: the caller's own, under their home, named by the job.
	dirID := alloc.FerryID
	if alloc.Array {
		dirID = "" // any of the caller's job dirs: checked to be a job id below
	}
	jobDir, home, err := p.checkJobDir(req.JobDir, peer.UID, dirID)
	if err != nil {
		return ContainerSpec{}, runDirs{}, err
	}
	id, err := job.ParseID(filepath.Base(jobDir))
	if err != nil || string(id) != filepath.Base(jobDir) {
		return ContainerSpec{}, runDirs{}, refuse("job dir %s is not a ferry job dir", req.JobDir)
	}
	outputs, err := ownedDir(filepath.Join(jobDir, job.OutputsDir), peer.UID)
	if err != nil {
		return ContainerSpec{}, runDirs{}, err
	}
	scratch, scratchRoot, err := p.checkScratch(req.Scratch, peer.UID, id)
	if err != nil {
		return ContainerSpec{}, runDirs{}, err
	}
	if !slices.Contains(p.Images, req.Image) {
		return ContainerSpec{}, runDirs{}, refuse("image %q is not on this cluster's allowlist (%s)", req.Image, strings.Join(p.Images, ", "))
	}
	network := "none"
	if req.Network != "" && req.Network != "none" {
		if !slices.Contains(p.Networks, req.Network) {
			return ContainerSpec{}, runDirs{}, refuse("network %q is not allowed on this cluster (allowed: %s)", req.Network, listOrNone(p.Networks))
		}
		network = req.Network
	}
	if len(req.Command) == 0 {
		return ContainerSpec{}, runDirs{}, refuse("no command")
	}
	env := []string{
		"HOME=/tmp",
		"FERRY_JOB_ID=" + string(id),
		"FERRY_SLURM_JOB_ID=" + alloc.SlurmJobID,
		"FERRY_OUTPUTS=/out",
		"FERRY_PARAMS_FILE=/work/ferry_params.json",
		"FERRY_NODE=" + p.Node,
		"FERRY_CPUS=" + strconv.Itoa(alloc.CPUs),
	}
	keys := make([]string, 0, len(req.Env))
	for k := range req.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !envKeyRE.MatchString(k) || strings.ContainsRune(req.Env[k], 0) {
			return ContainerSpec{}, runDirs{}, refuse("invalid environment variable %q", k)
		}
		if k != "FERRY_PARAMS" && (strings.HasPrefix(k, "FERRY_") || k == "HOME") {
			continue // set by the agent
		}
		env = append(env, k+"="+req.Env[k])
	}
	mounts := []Mount{
		{Source: scratch, Target: "/work", ReadOnly: true},
		{Source: outputs, Target: "/out"},
	}
	for _, m := range p.ReadOnlyMounts {
		mounts = append(mounts, Mount{Source: m, Target: m, ReadOnly: true})
	}
	var caps []string
	if p.Perfmon {
		caps = []string{"PERFMON"}
	}
	cpus := alloc.CPUs
	if cpus < 1 {
		cpus = 1
	}
	outRel, err := filepath.Rel(home, outputs)
	if err != nil {
		return ContainerSpec{}, runDirs{}, refuse("job dir %s is outside the caller's spool (%s)", req.JobDir, home)
	}
	dirs := runDirs{
		binds: []BindSource{
			{Name: "work", Target: "/work", Root: scratchRoot, Rel: filepath.Base(scratch), UID: peer.UID, ReadOnly: true},
			{Name: "out", Target: "/out", Root: home, Rel: outRel, UID: peer.UID},
		},
		scratchRoot: scratchRoot, scratchName: filepath.Base(scratch), uid: peer.UID,
	}
	return ContainerSpec{
		Name:        "ferry-" + alloc.SlurmJobID + "-" + id.Short(),
		Hostname:    p.Node,
		Image:       req.Image,
		Cmd:         req.Command,
		Env:         env,
		User:        fmt.Sprintf("%d:%d", peer.UID, peer.GID),
		WorkingDir:  "/work",
		Mounts:      mounts,
		Network:     network,
		NanoCPUs:    int64(cpus) * 1e9,
		MemoryBytes: p.memLimit(alloc.MemBytes),
		PidsLimit:   p.PidsLimit,
		GPUs:        alloc.GPUs,
		CapAdd:      caps,
		TmpfsSize:   p.TmpfsSize,
		Labels: inCluster(p.Cluster, map[string]string{
			LabelJob:      string(id),
			LabelSlurmJob: alloc.SlurmJobID,
			LabelUID:      strconv.Itoa(peer.UID),
			LabelNode:     p.Node,
		}),
	}, dirs, nil
}

// memLimit is a sandbox's memory limit for a job Slurm allotted alloc
// bytes (0: none, when memory is not a consumable resource): the
// allotment, but never more than the node's memory less the reserve, so
// that a job that runs away is killed in its own cgroup and not slurmd,
// dockerd or the agent by the node's OOM killer.
func (p *Policy) memLimit(alloc int64) int64 {
	ceiling := p.NodeMemory - p.MemReserve
	if p.NodeMemory <= 0 || ceiling <= 0 {
		return alloc
	}
	if alloc <= 0 || alloc > ceiling {
		return ceiling
	}
	return alloc
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// checkJobDir resolves dir and checks that it is the caller's own job dir
// for id: under the caller's home, owned by them, named by the job id. It
// returns the resolved job dir and home.
func (p *Policy) checkJobDir(dir string, uid int, id job.ID) (string, string, error) {
	if dir == "" || !filepath.IsAbs(dir) {
		return "", "", refuse("job dir %q is not an absolute path", dir)
	}
	homeOf := p.HomeOf
	if homeOf == nil {
		homeOf = HomeOf
	}
	home, err := homeOf(uid)
	if err != nil {
		return "", "", refuse("no home dir for uid %d: %v", uid, err)
	}
	return checkJobDir(dir, home, uid, id)
}

// CheckJobDir resolves dir and checks that it lies under home, is owned by
// uid and is named id. It returns the resolved path. The agent and the
// epilog (which writes into job dirs as root) both rely on it.
func CheckJobDir(dir, home string, uid int, id job.ID) (string, error) {
	real, _, err := checkJobDir(dir, home, uid, id)
	return real, err
}

// checkJobDir is CheckJobDir that also returns the resolved home.
func checkJobDir(dir, home string, uid int, id job.ID) (string, string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", "", refuse("job dir %s: %v", dir, err)
	}
	realHome, err := filepath.EvalSymlinks(home)
	if err != nil {
		return "", "", refuse("home %s: %v", home, err)
	}
	if !within(real, realHome) || real == realHome {
		return "", "", refuse("job dir %s is outside the caller's spool (%s)", dir, home)
	}
	if id != "" && filepath.Base(real) != string(id) {
		return "", "", refuse("job dir %s does not belong to ferry job %s", dir, id)
	}
	real, err = ownedDir(real, uid)
	return real, realHome, err
}

// ownedDir checks that path is a directory (not a symlink) owned by uid.
func ownedDir(path string, uid int) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", refuse("%s: %v", path, errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return "", refuse("%s is not a directory", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != uid {
		return "", refuse("%s is not owned by uid %d", path, uid)
	}
	return path, nil
}

// checkScratch checks that dir is this job's scratch dir, owned by uid and
// directly in the scratch root. It returns dir cleaned and the resolved
// scratch root.
func (p *Policy) checkScratch(dir string, uid int, id job.ID) (string, string, error) {
	clean := filepath.Clean(dir)
	if dir == "" || !filepath.IsAbs(dir) || filepath.Dir(clean) != filepath.Clean(p.ScratchDir) ||
		!strings.HasPrefix(filepath.Base(clean), string(id)+".") {
		return "", "", refuse("scratch dir %q is not this job's scratch under %s", dir, p.ScratchDir)
	}
	if _, err := ownedDir(clean, uid); err != nil {
		return "", "", err
	}
	root, err := filepath.EvalSymlinks(p.ScratchDir)
	if err != nil {
		return "", "", refuse("the node's scratch dir %s: %v", p.ScratchDir, errors.Unwrap(err))
	}
	return clean, root, nil
}

func within(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// HomeOf looks a uid's home dir up in the passwd database.
func HomeOf(uid int) (string, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return "", err
	}
	return u.HomeDir, nil
}
