package job

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/env"
	"github.com/ferry-hpc/ferry/pkg/lazyre"
)

// Spec is what a user asked for. It is written once, to spec.json, when the
// job is submitted, and never changed afterwards.
type Spec struct {
	ID        ID                `json:"id"`
	Project   string            `json:"project"`
	Name      string            `json:"name"`
	Command   []string          `json:"command"`
	Image     string            `json:"image"`
	Resources Resources         `json:"resources"`
	Partition string            `json:"partition,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Params    map[string]any    `json:"params,omitempty"`
	Network   string            `json:"network,omitempty"`
	// Environment is what the job's image gains on top of Image
	// (requirements.txt, job.yaml's apt:), built by the cluster once per
	// content hash; nil: Image as it is.
	Environment *env.Spec `json:"environment,omitempty"`

	User      string    `json:"user"`
	UID       int       `json:"uid"`
	GID       int       `json:"gid"`
	Submitted time.Time `json:"submitted"`
	Dir       string    `json:"dir"`    // the job dir, absolute
	Source    string    `json:"source"` // the project dir it was packed from
	Bundle    Bundle    `json:"bundle"`
	Sweep     *SweepRef `json:"sweep,omitempty"` // set for the tasks of a sweep
}

// SweepRef ties a task to its sweep.
type SweepRef struct {
	ID    ID  `json:"id"`
	Index int `json:"index"`
}

// Resources are what the job asks Slurm for.
type Resources struct {
	CPUs      int   `json:"cpus"`
	MemBytes  int64 `json:"mem_bytes"`
	GPUs      int   `json:"gpus,omitempty"`
	TimeLimit int64 `json:"time_limit_s"` // seconds; 0 = the partition's default
}

// Bundle describes the packed project.
type Bundle struct {
	File  string `json:"file"`   // name inside the job dir
	Hash  string `json:"sha256"` // of the uncompressed tar stream
	Size  int64  `json:"size"`   // compressed bytes
	Bytes int64  `json:"bytes"`  // uncompressed content bytes
	Files int    `json:"files"`
}

var (
	// The length is checked apart: a counted repetition such as {0,62}
	// compiles into 62 states, and every ferry command paid for that at
	// start-up.
	projectRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envKeyRE  = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidateProject checks a project name: it ends up in the Slurm job name and
// in Redis keys, so it is kept to a safe alphabet.
func ValidateProject(p string) error {
	if len(p) > 63 || !projectRE.MatchString(p) {
		return fmt.Errorf("invalid project name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters", p)
	}
	return nil
}

// Validate checks the spec's own fields; cluster policy (allowlists, caps) is
// checked by config.
func (s *Spec) Validate() error {
	var errs []error
	if err := ValidateProject(s.Project); err != nil {
		errs = append(errs, err)
	}
	if len(s.Command) == 0 || strings.TrimSpace(s.Command[0]) == "" {
		errs = append(errs, errors.New("no command: set command in job.yaml or pass one after --"))
	}
	if s.Image == "" {
		errs = append(errs, errors.New("no image: set image in job.yaml or default_image in the cluster config"))
	}
	if s.Resources.CPUs < 1 {
		errs = append(errs, fmt.Errorf("cpus must be at least 1, got %d", s.Resources.CPUs))
	}
	if s.Resources.MemBytes < 0 || s.Resources.GPUs < 0 || s.Resources.TimeLimit < 0 {
		errs = append(errs, errors.New("mem, gpus and time must not be negative"))
	}
	if len(s.Name) > 200 {
		errs = append(errs, fmt.Errorf("name is %d characters long; at most 200", len(s.Name)))
	}
	if s.Environment != nil {
		if err := s.Environment.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	for k := range s.Env {
		if !envKeyRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("invalid env name %q", k))
		}
		if strings.HasPrefix(k, "FERRY_") || strings.HasPrefix(k, "SLURM_") {
			errs = append(errs, fmt.Errorf("env name %q is reserved", k))
		}
	}
	return errors.Join(errs...)
}

// ParseMem reads a memory size in Slurm's notation: a number with an optional
// K, M, G or T suffix (binary units; a bare number is megabytes, as in sbatch).
func ParseMem(s string) (int64, error) {
	in := strings.TrimSpace(s)
	t := strings.ToUpper(in)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	if t == "" {
		return 0, fmt.Errorf("invalid memory size %q: want a size such as 512M or 4G", s)
	}
	mult := int64(1 << 20)
	switch t[len(t)-1] {
	case 'K':
		mult, t = 1<<10, t[:len(t)-1]
	case 'M':
		mult, t = 1<<20, t[:len(t)-1]
	case 'G':
		mult, t = 1<<30, t[:len(t)-1]
	case 'T':
		mult, t = 1<<40, t[:len(t)-1]
	}
	var whole, frac int64
	var fracDiv int64 = 1
	parts := strings.SplitN(t, ".", 2)
	if !isDigits(parts[0]) || (len(parts) == 2 && !isDigits(parts[1])) || len(parts[0]) > 12 {
		return 0, fmt.Errorf("invalid memory size %q: want a size such as 512M or 4G", s)
	}
	fmt.Sscan(parts[0], &whole)
	if len(parts) == 2 && parts[1] != "" {
		p := parts[1]
		if len(p) > 6 {
			p = p[:6]
		}
		fmt.Sscan(p, &frac)
		for range p {
			fracDiv *= 10
		}
	}
	if whole > (math.MaxInt64-mult)/mult {
		return 0, fmt.Errorf("invalid memory size %q: too large", s)
	}
	n := whole*mult + frac*mult/fracDiv
	if n <= 0 {
		return 0, fmt.Errorf("invalid memory size %q: must be more than zero", s)
	}
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// FormatMem renders bytes the way Slurm reads them, in whole megabytes
// rounded up ("512M").
func FormatMem(b int64) string {
	mb := (b + (1<<20 - 1)) >> 20
	if mb%1024 == 0 && mb > 0 {
		return fmt.Sprintf("%dG", mb/1024)
	}
	return fmt.Sprintf("%dM", mb)
}

// ParseTime reads a time limit: Slurm's forms ("30", "MM:SS", "HH:MM:SS",
// "D-HH", "D-HH:MM", "D-HH:MM:SS") or a Go duration ("90m", "2h30m").
func ParseTime(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	bad := fmt.Errorf("invalid time limit %q: want minutes (30), HH:MM:SS, D-HH:MM:SS or a duration such as 90m", s)
	if in == "" {
		return 0, bad
	}
	if d, err := time.ParseDuration(in); err == nil {
		if d = d.Round(time.Second); d <= 0 {
			return 0, bad
		}
		return d, nil
	}
	days := int64(0)
	rest := in
	if i := strings.IndexByte(in, '-'); i >= 0 {
		if !isDigits(in[:i]) || len(in[:i]) > 5 {
			return 0, bad
		}
		fmt.Sscan(in[:i], &days)
		rest = in[i+1:]
	}
	fields := strings.Split(rest, ":")
	if len(fields) > 3 {
		return 0, bad
	}
	nums := make([]int64, len(fields))
	for i, f := range fields {
		if !isDigits(f) || len(f) > 7 {
			return 0, bad
		}
		fmt.Sscan(f, &nums[i])
	}
	var secs int64
	switch {
	case days > 0 || rest != in: // D-HH[:MM[:SS]]
		secs = days * 86400
		units := []int64{3600, 60, 1}
		for i, n := range nums {
			secs += n * units[i]
		}
	case len(nums) == 1: // minutes
		secs = nums[0] * 60
	case len(nums) == 2: // MM:SS
		secs = nums[0]*60 + nums[1]
	default: // HH:MM:SS
		secs = nums[0]*3600 + nums[1]*60 + nums[2]
	}
	if secs <= 0 {
		return 0, bad
	}
	return time.Duration(secs) * time.Second, nil
}

// FormatTime renders a time limit in seconds as Slurm's D-HH:MM:SS.
func FormatTime(secs int64) string {
	d := secs / 86400
	h := secs % 86400 / 3600
	m := secs % 3600 / 60
	s := secs % 60
	return fmt.Sprintf("%d-%02d:%02d:%02d", d, h, m, s)
}
