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

// The agent asks Slurm in two squeue calls, so that nothing a user wrote
// can pass for something Slurm said. The first asks for the fields that
// carry power (owner, state, nodes, CPUs, memory, GPUs) and ids: each has a
// fixed alphabet that no user chooses, so no separator can appear inside
// one and no record can be forged. It may list several records (`squeue
// -j` given an array's own id lists every task of the array, and the task
// that carries that id is one of them); exactly one must carry the id
// asked for. The second asks for the free-text fields (WorkDir and Comment,
// which users set and in which Slurm keeps control characters) of that one
// record alone, by its array task id when it is a task, and reads them only
// when the output is exactly one record of exactly those fields.
//
// MinMemory comes before tres-alloc: without memory in SelectTypeParameters
// (CR_Core, as on clusters without cgroups) the TRES carry no mem, and the
// request is all there is; the container limit enforces it.
var allocFields = []string{"JobID", "UserID", "State", "NodeList", "NumCPUs", "MinMemory", "tres-alloc", "ArrayTaskID", "ArrayJobID"}

// allocTextFields are the free-text fields, asked of one record alone.
var allocTextFields = []string{"JobID", "WorkDir", "Comment"}

func allocFormat() string     { return formatO(allocFields) }
func allocTextFormat() string { return formatO(allocTextFields) }

func allocArgs(sel, format string) []string {
	return []string{"-h", "-a", "-t", "all", "--noconvert", "-j", sel, "-O", format}
}

// ErrNoSuchJob is returned by Allocation for a job slurmctld does not know.
var ErrNoSuchJob = fmt.Errorf("Slurm does not know this job: %w", job.ErrNotFound)

// Allocation asks slurmctld for one job's owner, state, nodes and
// allocated resources (CPUs, memory, GPUs from its TRES), and its work dir
// and comment: two squeue calls.
func (c *Client) Allocation(ctx context.Context, id string) (Allocation, error) {
	if !jobIDRE.MatchString(id) {
		return Allocation{}, fmt.Errorf("invalid Slurm job id %q", id)
	}
	out, err := c.Runner.Run(ctx, nil, "squeue", allocArgs(id, allocFormat())...)
	if err != nil {
		if isInvalidJobID(err) {
			return Allocation{}, ErrNoSuchJob
		}
		return Allocation{}, err
	}
	a, sel, err := parseAllocation(string(out), id)
	if err != nil || sel == "" {
		return a, err
	}
	out, err = c.Runner.Run(ctx, nil, "squeue", allocArgs(sel, allocTextFormat())...)
	if err != nil {
		if isInvalidJobID(err) {
			return Allocation{}, ErrNoSuchJob
		}
		return Allocation{}, err
	}
	if a.WorkDir, a.Comment, err = parseAllocText(string(out), id); err != nil {
		return Allocation{}, err
	}
	return a, nil
}

// parseAllocation picks the one record of job id from the fixed-alphabet
// output, and returns the selector that names that record alone for the
// free-text call ("" when there is none: the pending remainder of an
// array, whose tasks share one line, has no record of its own).
func parseAllocation(out, id string) (Allocation, string, error) {
	recs := strings.Split(out, recordEnd+"\n")
	if rest := recs[len(recs)-1]; strings.TrimSpace(rest) != "" {
		return Allocation{}, "", fmt.Errorf("squeue: unterminated record %q", truncate(rest, 200))
	}
	var found []Allocation
	var sel string
	for _, rec := range recs[:len(recs)-1] {
		a, pending, err := parseAllocRecord(rec)
		if err != nil {
			return Allocation{}, "", err
		}
		if a.ID != id {
			continue
		}
		found = append(found, a)
		switch {
		case pending:
			sel = ""
		case a.ArrayTask >= 0 && a.ArrayJobID != "":
			sel = a.ArrayJobID + "_" + strconv.Itoa(a.ArrayTask)
		default:
			sel = id
		}
	}
	switch len(found) {
	case 0:
		return Allocation{}, "", ErrNoSuchJob
	case 1:
	default:
		return Allocation{}, "", fmt.Errorf("squeue: %d records carry Slurm job id %s: refusing to guess which one is the job", len(found), id)
	}
	if sel != "" && !jobIDRE.MatchString(sel) {
		return Allocation{}, "", fmt.Errorf("squeue: job %s has a bad array id %q", id, sel)
	}
	return found[0], sel, nil
}

// parseAllocRecord parses one fixed-alphabet record. pending is set for
// the pending remainder of an array (its task id is a range).
func parseAllocRecord(rec string) (a Allocation, pending bool, err error) {
	f := strings.Split(rec, fieldSep)
	if len(f) != len(allocFields) {
		return Allocation{}, false, fmt.Errorf("squeue: want %d fields, got %d in %q", len(allocFields), len(f), truncate(rec, 200))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	a = Allocation{ID: f[0], State: baseState(f[2]), ArrayTask: -1, ArrayJobID: str(f[8])}
	if n, err := strconv.Atoi(f[7]); err == nil && n >= 0 {
		a.ArrayTask = n
	} else if str(f[7]) != "" {
		pending = true
	}
	if a.UID, err = strconv.Atoi(f[1]); err != nil {
		return Allocation{}, false, fmt.Errorf("squeue: bad uid %q", f[1])
	}
	if nl := str(f[3]); nl != "" {
		if a.Nodes, err = ExpandHostlist(nl); err != nil {
			return Allocation{}, false, err
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
	return a, pending, nil
}

// parseAllocText reads the work dir and comment of job id from the
// free-text call, asked of that job's record alone. It reads them only
// when the output is one record of exactly three fields, the first being
// id: a separator inside the text would make the split a guess.
func parseAllocText(out, id string) (workDir, comment string, err error) {
	if strings.TrimSpace(out) == "" {
		return "", "", ErrNoSuchJob
	}
	rec, ok := strings.CutSuffix(out, recordEnd+"\n")
	if !ok {
		return "", "", fmt.Errorf("squeue: unterminated record %q", truncate(out, 200))
	}
	if strings.Contains(rec, recordEnd) || strings.Count(rec, fieldSep) != len(allocTextFields)-1 {
		return "", "", fmt.Errorf("squeue: the work dir or comment of Slurm job %s holds a field or record separator (\\x1f, \\x1e), or squeue listed more than the job: refusing to read them", id)
	}
	f := strings.Split(rec, fieldSep)
	if got := strings.TrimSpace(f[0]); got != id {
		return "", "", fmt.Errorf("squeue: asked for Slurm job %s, got %q", id, truncate(got, 50))
	}
	return str(strings.TrimSpace(f[1])), str(f[2]), nil
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
