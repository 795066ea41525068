package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Allocation is what a worker's agent needs to know about a running job,
// asked of slurmctld directly, never taken from the job's environment.
type Allocation struct {
	ID       string // Slurm's numeric job id (SLURM_JOB_ID)
	UID      int
	State    string   // base state, e.g. RUNNING
	Nodes    []string // expanded
	CPUs     int
	MemBytes int64
	GPUs     int
	Comment  string
	WorkDir  string
	// ArrayTask is the task index of an array job, -1 for a plain job;
	// ArrayJobID is the array's id ("123" of 123_4).
	ArrayTask  int
	ArrayJobID string
}

// MinMemory comes before tres-alloc: without memory in SelectTypeParameters
// (CR_Core, as on clusters without cgroups) the TRES carry no mem, and the
// request is all there is; the container limit enforces it.
var allocFields = []string{"JobID", "UserID", "State", "NodeList", "NumCPUs", "MinMemory", "tres-alloc", "ArrayTaskID", "ArrayJobID", "WorkDir", "Comment"}

func allocFormat() string { return formatO(allocFields) }

// ErrNoSuchJob is returned by Allocation for a job slurmctld does not know.
var ErrNoSuchJob = fmt.Errorf("Slurm does not know this job: %w", job.ErrNotFound)

// Allocation asks slurmctld for one job's owner, state, nodes and
// allocated resources (CPUs, memory, GPUs from its TRES).
func (c *Client) Allocation(ctx context.Context, id string) (Allocation, error) {
	if !jobIDRE.MatchString(id) {
		return Allocation{}, fmt.Errorf("invalid Slurm job id %q", id)
	}
	out, err := c.Runner.Run(ctx, nil, "squeue", "-h", "-a", "-t", "all", "--noconvert", "-j", id, "-O", allocFormat())
	if err != nil {
		if isInvalidJobID(err) {
			return Allocation{}, ErrNoSuchJob
		}
		return Allocation{}, err
	}
	return parseAllocation(string(out), id)
}

// parseAllocation picks the record of job id: `squeue -j` given an array's
// own id lists every task of the array, and the last task to start carries
// that id as its JobID.
func parseAllocation(out, id string) (Allocation, error) {
	for _, rec := range strings.Split(out, recordEnd+"\n") {
		if strings.TrimSpace(rec) == "" {
			continue
		}
		a, err := parseAllocRecord(rec)
		if err != nil {
			return Allocation{}, err
		}
		if a.ID == id {
			return a, nil
		}
	}
	return Allocation{}, ErrNoSuchJob
}

func parseAllocRecord(rec string) (Allocation, error) {
	f := strings.SplitN(rec, fieldSep, len(allocFields))
	if len(f) != len(allocFields) {
		return Allocation{}, fmt.Errorf("squeue: want %d fields, got %d in %q", len(allocFields), len(f), truncate(rec, 200))
	}
	for i := range f[:len(f)-1] {
		f[i] = strings.TrimSpace(f[i])
	}
	a := Allocation{ID: f[0], State: baseState(f[2]), Comment: str(f[10]), WorkDir: str(f[9]), ArrayTask: -1, ArrayJobID: str(f[8])}
	if n, err := strconv.Atoi(f[7]); err == nil && n >= 0 {
		a.ArrayTask = n
	}
	var err error
	if a.UID, err = strconv.Atoi(f[1]); err != nil {
		return Allocation{}, fmt.Errorf("squeue: bad uid %q", f[1])
	}
	if nl := str(f[3]); nl != "" {
		if a.Nodes, err = ExpandHostlist(nl); err != nil {
			return Allocation{}, err
		}
	}
	a.CPUs, _ = strconv.Atoi(f[4])
	if mem := str(f[5]); mem != "" {
		perCPU := strings.HasSuffix(mem, "c")
		if n, err := job.ParseMem(strings.TrimRight(mem, "cn")); err == nil {
			if perCPU {
				n *= int64(max(a.CPUs, 1))
			}
			a.MemBytes = n
		}
	}
	for _, kv := range strings.Split(str(f[6]), ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "cpu":
			if n, err := strconv.Atoi(v); err == nil {
				a.CPUs = n
			}
		case "mem":
			if n, err := job.ParseMem(v); err == nil {
				a.MemBytes = n
			}
		case "gres/gpu":
			a.GPUs, _ = strconv.Atoi(v)
		}
	}
	return a, nil
}

// ExpandHostlist expands Slurm's compressed host lists: "w1",
// "w[1-3,5]", "a1,b[2-3]".
func ExpandHostlist(s string) ([]string, error) {
	var out []string
	for len(s) > 0 {
		// one element: up to a comma outside brackets
		depth, end := 0, len(s)
		for i, r := range s {
			if r == '[' {
				depth++
			} else if r == ']' {
				depth--
			} else if r == ',' && depth == 0 {
				end = i
				break
			}
		}
		elem := s[:end]
		if end < len(s) {
			s = s[end+1:]
		} else {
			s = ""
		}
		open := strings.IndexByte(elem, '[')
		if open < 0 {
			out = append(out, elem)
			continue
		}
		close := strings.IndexByte(elem, ']')
		if close < open {
			return nil, fmt.Errorf("bad host list %q", elem)
		}
		prefix, suffix := elem[:open], elem[close+1:]
		for _, r := range strings.Split(elem[open+1:close], ",") {
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || b < a || b-a > 100000 {
				return nil, fmt.Errorf("bad host range %q", r)
			}
			for n := a; n <= b; n++ {
				out = append(out, fmt.Sprintf("%s%0*d%s", prefix, len(lo), n, suffix))
			}
		}
	}
	return out, nil
}
