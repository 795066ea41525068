package submit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/atomicfile"
	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/env"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/lazyre"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// Request is what the user chose on the command line (or in Python). Zero
// values mean "not given": job.yaml and then the cluster defaults apply.
type Request struct {
	Dir       string
	Command   []string
	Image     string
	CPUs      int
	Mem       string
	GPUs      int // -1 = not given
	Time      string
	Partition string
	Name      string
	Network   string
	Params    map[string]any // merged over job.yaml's params
	Env       map[string]string
}

// Sbatcher is the slice of the Slurm client submit needs.
type Sbatcher interface {
	Submit(ctx context.Context, script string, args ...string) (string, error)
}

// EarlySbatcher is an Sbatcher that can start sbatch before the script is
// ready (slurm.Client does).
type EarlySbatcher interface {
	StartSubmit(ctx context.Context, args ...string) *slurm.PendingSubmit
}

// partitionRE is what a Slurm partition name may hold here: anything else
// would be refused later, by the script renderer or by sbatch, with a
// message about internals.
var partitionRE = lazyre.New(`^[A-Za-z0-9_.-]+$`)

// Submitter submits jobs for the calling user.
type Submitter struct {
	Config   *config.Config
	Slurm    Sbatcher
	Ferry    string // ferry's path on the workers
	Now      func() time.Time
	Progress io.Writer // progress bar target (stderr)
	TTY      bool
}

// Submitted is the outcome of a submit.
type Submitted struct {
	Spec    *job.Spec `json:"spec"`
	SlurmID string    `json:"slurm_id"`
	Dir     job.Dir   `json:"dir"`
}

// BadInput marks an error in what the user gave (exit code 2).
type BadInput struct{ Err error }

func (e *BadInput) Error() string { return e.Err.Error() }
func (e *BadInput) Unwrap() error { return e.Err }

func bad(format string, args ...any) error { return &BadInput{Err: fmt.Errorf(format, args...)} }

// BuildSpec merges cluster defaults, DIR/job.yaml and the request into a
// checked Spec. It reads DIR but writes nothing.
func (s *Submitter) BuildSpec(req Request) (*job.Spec, error) {
	fi, err := os.Stat(req.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, bad("project dir %s does not exist", req.Dir)
		}
		return nil, bad("project dir %s: %v", req.Dir, err)
	}
	if !fi.IsDir() {
		return nil, bad("%s is not a directory: give the project dir to submit", req.Dir)
	}
	abs, err := filepath.Abs(req.Dir)
	if err != nil {
		return nil, err
	}
	jf, err := config.ReadJobFile(filepath.Join(abs, "job.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		jf, err = &config.JobFile{}, nil
	}
	if err != nil {
		return nil, &BadInput{Err: err}
	}
	cfg := s.Config
	d := cfg.Defaults
	spec := &job.Spec{
		Project:   firstNonEmpty(jf.Project, sanitizeProject(filepath.Base(abs))),
		Name:      firstNonEmpty(req.Name, jf.Name),
		Image:     firstNonEmpty(req.Image, jf.Image, cfg.DefaultImage),
		Partition: firstNonEmpty(req.Partition, jf.Partition, d.Partition),
		Network:   firstNonEmpty(req.Network, jf.Network),
		Source:    abs,
	}
	spec.Command = req.Command
	if len(spec.Command) == 0 {
		spec.Command = []string(jf.Command)
	}
	spec.Resources.CPUs = firstPositive(req.CPUs, jf.CPUs, d.CPUs, 1)
	spec.Resources.GPUs = jf.GPUs
	if req.GPUs >= 0 {
		spec.Resources.GPUs = req.GPUs
	}
	if mem := firstNonEmpty(req.Mem, jf.Mem, d.Mem); mem != "" {
		if spec.Resources.MemBytes, err = job.ParseMem(mem); err != nil {
			return nil, bad("--mem: %v", err)
		}
	}
	if t := firstNonEmpty(req.Time, jf.Time, d.Time); t != "" {
		lim, err := job.ParseTime(t)
		if err != nil {
			return nil, bad("--time: %v", err)
		}
		spec.Resources.TimeLimit = int64(lim / time.Second)
	}
	spec.Env = map[string]string{}
	maps.Copy(spec.Env, jf.Env)
	maps.Copy(spec.Env, req.Env)
	spec.Params = map[string]any{}
	maps.Copy(spec.Params, jf.Params)
	maps.Copy(spec.Params, req.Params)
	if spec.Environment, err = readEnvironment(abs, jf); err != nil {
		return nil, &BadInput{Err: err}
	}
	if spec.Partition != "" && (len(spec.Partition) > 64 || !partitionRE.MatchString(spec.Partition)) {
		return nil, bad("partition %q is not a Slurm partition name (letters, digits, . _ -); 'sinfo -s' lists them", spec.Partition)
	}
	if err := spec.Validate(); err != nil {
		return nil, &BadInput{Err: oneLine(err)}
	}
	if err := cfg.ImageAllowed(spec.Image); err != nil {
		return nil, &BadInput{Err: err}
	}
	if spec.Network != "" && spec.Network != "none" && !contains(cfg.Networks, spec.Network) {
		return nil, bad("network %q is not allowed on this cluster (allowed: %s)", spec.Network, listOrNone(cfg.Networks))
	}
	if _, err := json.Marshal(spec.Params); err != nil {
		return nil, bad("params: %v", err)
	}
	return spec, nil
}

// readEnvironment reads the project's environment: requirements.txt beside
// job.yaml (pip) and job.yaml's apt list. nil when it asks for nothing.
func readEnvironment(dir string, jf *config.JobFile) (*env.Spec, error) {
	var pip []string
	f, err := os.Open(filepath.Join(dir, env.RequirementsFile))
	switch {
	case err == nil:
		defer f.Close()
		if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", env.RequirementsFile)
		}
		if pip, err = env.ParseRequirements(f); err != nil {
			return nil, oneLine(err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if len(pip) == 0 && len(jf.Apt) == 0 {
		return nil, nil
	}
	spec, err := env.NewSpec(pip, jf.Apt)
	if err != nil {
		return nil, oneLine(err)
	}
	return &spec, nil
}

// Submit builds the spec, writes the job dir and runs sbatch. On any error
// nothing is left behind: the job dir is created by one rename at the end,
// and removed again if Slurm refuses the job.
func (s *Submitter) Submit(ctx context.Context, req Request) (*Submitted, error) {
	spec, err := s.BuildSpec(req)
	if err != nil {
		return nil, err
	}
	return s.SubmitSpec(ctx, spec)
}

// SubmitSpec writes the job dir for a built spec and runs sbatch.
//
// Three things overlap. sbatch is started first: its start-up (about a
// third of its time) runs while ferry checks the project and writes the
// job dir; it is handed its script (on stdin) only once the dir is
// committed, so a job can never start before its dir exists, and on any
// error before that it is killed unfed and nothing reaches Slurm. Then,
// while sbatch talks to slurmctld, the bundle is packed beside the
// committed small files (spec, params, script) and renamed into place when
// complete; a job that starts before its bundle is there waits for it (see
// sandbox.Run). If packing fails after all, the Slurm job is cancelled and
// the job dir removed, so nothing is left behind either way.
func (s *Submitter) SubmitSpec(ctx context.Context, spec *job.Spec) (*Submitted, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var early *slurm.PendingSubmit
	if es, ok := s.Slurm.(EarlySbatcher); ok {
		early = es.StartSubmit(ctx)
		defer early.Abort() // kills it if it was not handed its script
	}
	if err := s.identify(spec); err != nil {
		return nil, err
	}
	spec.Submitted = now().UTC()
	spec.ID = job.NewID(spec.Submitted)
	// One stat pass: the size cap is checked before anything reaches
	// Slurm, the fingerprint finds an unchanged project's bundle, and the
	// pack packs the very entries the fingerprint covered.
	tree, err := bundle.ScanTree(ctx, spec.Source, "default")
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", spec.Source, err)
	}
	if err := tooBig(tree.Files, tree.Total, int64(s.Config.MaxBundle)); err != nil {
		return nil, err
	}
	spool := s.Config.SpoolRoot
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("create spool %s: %w", spool, err)
	}
	final := job.DirFor(spool, spec.ID)
	spec.Dir = final.Path()
	spec.Bundle = job.Bundle{File: job.BundleFile}
	tmp := filepath.Join(spool, ".tmp-"+string(spec.ID))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create job dir: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp)
		}
	}()
	// The staging dir is private until the rename, so its files are written
	// plainly; they are made durable below, while sbatch runs.
	staged := job.Dir(tmp)
	script, err := s.script(spec)
	if err != nil {
		return nil, &BadInput{Err: err}
	}
	params := spec.Params
	if params == nil {
		params = map[string]any{}
	}
	paramsJSON, err := json.MarshalIndent(params, "", "  ")
	if err != nil {
		return nil, bad("params: %v", err)
	}
	specJSON, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{staged.Params(), append(paramsJSON, '\n'), 0o600},
		{staged.Spec(), append(specJSON, '\n'), 0o600},
		{staged.Script(), script, 0o700},
	} {
		if err := os.WriteFile(f.path, f.data, f.perm); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(staged.Outputs(), 0o700); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final.Path()); err != nil {
		return nil, fmt.Errorf("commit job dir: %w", err)
	}
	committed = true

	packCtx, stopPack := context.WithCancel(ctx)
	defer stopPack()
	packed := make(chan error, 1)
	go func() { packed <- s.packInto(packCtx, spec, final, spool, tree) }()

	var slurmID string
	if early != nil {
		slurmID, err = early.Submit(final.Script(), script)
	} else {
		slurmID, err = s.Slurm.Submit(ctx, final.Script())
	}
	if err != nil {
		stopPack()
		<-packed
		_ = os.RemoveAll(final.Path())
		return nil, fmt.Errorf("job %s was not submitted: %w", spec.ID.Short(), err)
	}
	if perr := <-packed; perr != nil {
		if c, ok := s.Slurm.(interface {
			Cancel(context.Context, []string, string) error
		}); ok {
			_ = c.Cancel(context.WithoutCancel(ctx), []string{slurmID}, "")
		}
		_ = os.RemoveAll(final.Path())
		var bi *BadInput
		if errors.As(perr, &bi) {
			return nil, perr
		}
		return nil, fmt.Errorf("job %s not submitted: %w", spec.ID.Short(), perr)
	}
	// The Slurm id is a hint for lookups by Slurm id: Slurm itself lists
	// the job by its comment (ferry:<id>), so it is renamed into place but
	// not made durable, which would only lengthen every submit.
	if err := writeHint(final.SlurmID(), []byte(slurmID+"\n")); err != nil {
		return nil, fmt.Errorf("record Slurm id %s for job %s: %w", slurmID, spec.ID, err)
	}
	return &Submitted{Spec: spec, SlurmID: slurmID, Dir: final}, nil
}

// packInto packs the project beside the committed job dir, records the
// bundle in spec.json, renames the bundle into place last (its presence
// means the job dir is complete), and makes it all durable.
func (s *Submitter) packInto(ctx context.Context, spec *job.Spec, d job.Dir, spool string, tree *bundle.Tree) error {
	// The small files are already in place: make them durable while packing.
	early := make(chan error, 1)
	go func() { early <- atomicfile.SyncAll(d.Params(), d.Script(), d.Outputs()) }()
	tmp := filepath.Join(d.Path(), ".bundle.tmp")
	cache := newBundleCache(spool)
	info, hit := cache.get(tree.Key, tmp)
	var err error
	if !hit {
		info, err = s.pack(ctx, spec.Source, tmp, tree)
	}
	if eerr := <-early; err == nil {
		err = eerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	spec.Bundle = job.Bundle{File: job.BundleFile, Hash: info.Hash, Size: info.Size, Bytes: info.Bytes, Files: info.Files}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	specTmp := filepath.Join(d.Path(), ".spec.json.tmp")
	if err := os.WriteFile(specTmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	// Two rounds of fsync: the new spec and the bundle, then (after the
	// renames) the dir and the spool. The bundle is renamed in last: its
	// presence tells a waiting job that the dir is complete.
	if err := atomicfile.SyncAll(specTmp, tmp); err != nil {
		return err
	}
	if err := os.Rename(specTmp, d.Spec()); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.Bundle()); err != nil {
		return err
	}
	if !hit {
		cache.put(tree.Key, d.Bundle(), info) // its own entries need not be durable
	}
	return atomicfile.SyncAll(d.Path(), spool)
}

// writeHint writes a small file atomically (temp file and rename) without
// waiting for the disk.
func writeHint(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// identify records the submitting user in spec.
func (s *Submitter) identify(spec *job.Spec) error {
	u, err := user.Current()
	if err != nil {
		return fmt.Errorf("who am I: %w", err)
	}
	spec.User = u.Username
	spec.UID, _ = strconv.Atoi(u.Uid)
	spec.GID, _ = strconv.Atoi(u.Gid)
	return nil
}

func (s *Submitter) pack(ctx context.Context, src, dst string, tree *bundle.Tree) (bundle.Info, error) {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return bundle.Info{}, err
	}
	info, err := bundle.Pack(ctx, src, f, bundle.Options{
		MaxBytes:   int64(s.Config.MaxBundle),
		Progress:   s.Progress,
		IsTerminal: s.TTY,
		Tree:       tree,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var tooBig *bundle.TooBigError
	if errors.As(err, &tooBig) {
		return info, &BadInput{Err: err}
	}
	if err != nil {
		return info, fmt.Errorf("pack %s: %w", src, err)
	}
	return info, nil
}

// Script renders the sbatch script for spec.
func (s *Submitter) script(spec *job.Spec) ([]byte, error) {
	d := job.Dir(spec.Dir)
	env := map[string]string{}
	if v := os.Getenv("FERRY_CONFIG"); v != "" {
		env["FERRY_CONFIG"] = v
	}
	return slurm.Render(slurm.Script{
		JobName:   "ferry/" + spec.Project,
		Comment:   "ferry:" + string(spec.ID),
		Output:    d.SlurmOut(),
		Chdir:     d.Path(),
		CPUs:      spec.Resources.CPUs,
		MemBytes:  spec.Resources.MemBytes,
		GPUs:      spec.Resources.GPUs,
		TimeLimit: spec.Resources.TimeLimit,
		Partition: spec.Partition,
		Ferry:     s.Ferry,
		Args:      []string{"sandbox", "run", "--job-dir", d.Path()},
		Env:       env,
		Header: []string{
			fmt.Sprintf("ferry job %s, project %s, submitted by %s at %s", spec.ID, spec.Project, spec.User, spec.Submitted.Format(time.RFC3339)),
			"The command, image and params are in spec.json and params.json beside this file.",
			"Re-run by hand with: sbatch " + d.Script(),
		},
	})
}

// ParseParam reads one --param k=v. The value is JSON when it parses as
// JSON (numbers, true/false, lists, objects, quoted strings), else a string.
func ParseParam(kv string) (string, any, error) {
	k, v, ok := strings.Cut(kv, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return "", nil, bad("--param %q: want key=value", kv)
	}
	var val any
	if err := json.Unmarshal([]byte(v), &val); err == nil {
		return k, val, nil
	}
	return k, v, nil
}

// ReadParamsFile reads --params FILE: a JSON or YAML mapping.
func ReadParamsFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, bad("--params: %v", err)
	}
	m, err := config.ParseParams(path, data)
	if err != nil {
		return nil, &BadInput{Err: fmt.Errorf("--params: %w", err)}
	}
	return m, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstPositive(vals ...int) int {
	for _, v := range vals {
		if v > 0 {
			return v
		}
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// sanitizeProject turns a dir name into a valid project name.
func sanitizeProject(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	p := strings.TrimLeft(b.String(), ".-_")
	if len(p) > 63 {
		p = p[:63]
	}
	if p == "" {
		return "project"
	}
	return p
}

// oneLine joins a multi-error into one line.
func oneLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}
