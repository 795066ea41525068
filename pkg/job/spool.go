package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Spool is a user's spool root, the parent of their job dirs.
type Spool struct{ Root string }

// Dirs lists the job dirs in the spool, newest first. Entries that are not
// job dirs (temp dirs of a submit in flight, stray files) are skipped.
func (s Spool) Dirs() ([]Dir, error) {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Dir
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if id, err := ParseID(e.Name()); err != nil || string(id) != e.Name() {
			continue // not a job dir ferry made (ids are lowercase)
		}
		out = append(out, DirFor(s.Root, ID(e.Name())))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() > out[j].ID() })
	return out, nil
}

// ReadSlurmID returns the Slurm job id recorded after sbatch, or "".
func ReadSlurmID(d Dir) string {
	b, err := os.ReadFile(d.SlurmID())
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SweepArray is one `sbatch --array` of a sweep, as its record keeps it:
// tasks First..Last are array tasks 0..Last-First of Slurm job SlurmID.
type SweepArray struct {
	SlurmID string `json:"slurm_id"`
	First   int    `json:"first"`
	Last    int    `json:"last"`
}

// TaskSlurmID is the Slurm id ("123_4") of task index of a sweep whose
// arrays are arrays, or "".
func TaskSlurmID(arrays []SweepArray, index int) string {
	for _, a := range arrays {
		if a.SlurmID != "" && index >= a.First && index <= a.Last {
			return a.SlurmID + "_" + strconv.Itoa(index-a.First)
		}
	}
	return ""
}

// ReadSweepArrays reads the arrays from the record of sweep id under spool.
func ReadSweepArrays(spool string, id ID) ([]SweepArray, error) {
	data, err := os.ReadFile(filepath.Join(spool, SweepsDir, string(id), SweepFile))
	if err != nil {
		return nil, err
	}
	var rec struct {
		Arrays []SweepArray `json:"arrays"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("read sweep %s: %w", id, err)
	}
	return rec.Arrays, nil
}

// SlurmIDOf returns the job's Slurm id: the one recorded in its dir after
// sbatch or, for a sweep task without that record (it is a hint, not
// waited onto the disk), the one its sweep's durable record implies.
// sweeps memoises the sweep records read (nil: no memo).
func SlurmIDOf(d Dir, spec *Spec, sweeps map[ID][]SweepArray) string {
	if sid := ReadSlurmID(d); sid != "" || spec == nil || spec.Sweep == nil {
		return sid
	}
	arrays, ok := sweeps[spec.Sweep.ID]
	if !ok {
		arrays, _ = ReadSweepArrays(filepath.Dir(d.Path()), spec.Sweep.ID)
		if sweeps != nil {
			sweeps[spec.Sweep.ID] = arrays
		}
	}
	return TaskSlurmID(arrays, spec.Sweep.Index)
}

// maxCandidates is how many of the jobs an ambiguous prefix matches its
// error names.
const maxCandidates = 4

// Resolve finds one job dir by ferry id, unique id prefix, or Slurm job id.
// Its errors are ErrNotFound or ErrAmbiguous, in one line that says what to
// do next.
func (s Spool) Resolve(ref string) (Dir, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if ref == "" {
		return "", NotFoundf("empty job id: give one of the ids 'ferry ls' shows")
	}
	if strings.ContainsAny(ref, `/\`) || ref == "." || ref == ".." {
		return "", NotFoundf("invalid job id %q: give one of the ids 'ferry ls' shows", ref)
	}
	whole, err := ParseID(ref)
	if err == nil { // a whole id: no need to list the spool
		if d := DirFor(s.Root, whole); isDir(d.Path()) {
			return d, nil
		}
	}
	dirs, err := s.Dirs()
	if err != nil {
		return "", err
	}
	array, task, arrayTask := strings.Cut(ref, "_")
	arrayTask = arrayTask && isDigits(array) && isDigits(task)
	if arrayTask {
		// The sweeps' records are durable, unlike a task's slurm_id hint.
		if d, sweep := s.resolveArrayTask(array, task); sweep != "" {
			if d == "" {
				return "", goneTask(ref, sweep)
			}
			return d, nil
		}
	}
	if isDigits(ref) || arrayTask {
		for _, d := range dirs {
			if ReadSlurmID(d) == ref {
				return d, nil
			}
		}
	}
	var matches []ID
	for _, d := range dirs {
		if strings.HasPrefix(string(d.ID()), ref) {
			matches = append(matches, d.ID())
		}
	}
	switch len(matches) {
	case 0:
		if whole != "" && string(whole) == ref {
			if sweep := s.sweepOf(whole); sweep != "" {
				return "", goneTask(ref, sweep)
			}
		}
		return "", NotFoundf("no job %q among your jobs (see 'ferry ls')", ref)
	case 1:
		return DirFor(s.Root, matches[0]), nil
	}
	return "", Ambiguousf("%q matches %d jobs: %s; give more characters", ref, len(matches), candidates(matches))
}

// sweepRecord is what Resolve reads of a sweep's record.
type sweepRecord struct {
	Arrays []SweepArray `json:"arrays"`
	Tasks  []struct {
		Index int `json:"index"`
		ID    ID  `json:"id"`
	} `json:"tasks"`
}

// eachSweep calls fn with the records of the user's sweeps, newest sweep
// first, until fn returns true. Records it cannot read are passed over.
func (s Spool) eachSweep(fn func(id ID, rec *sweepRecord) bool) {
	ents, err := os.ReadDir(filepath.Join(s.Root, SweepsDir))
	if err != nil {
		return
	}
	for i := len(ents) - 1; i >= 0; i-- { // ReadDir sorts by name: oldest id first
		id, err := ParseID(ents[i].Name())
		if err != nil || string(id) != ents[i].Name() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.Root, SweepsDir, string(id), SweepFile))
		if err != nil {
			continue
		}
		var rec sweepRecord
		if json.Unmarshal(data, &rec) == nil && fn(id, &rec) {
			return
		}
	}
}

// resolveArrayTask finds the task that is array task task ("4") of Slurm
// job array ("123") in the records of the user's sweeps. The newest sweep
// that lists it is the one (Slurm may reuse an id after its controller
// lost its state): sweep is that sweep ("" if none lists it), and d is ""
// when that task's dir is gone, never an older sweep's task.
func (s Spool) resolveArrayTask(array, task string) (d Dir, sweep ID) {
	n, err := strconv.Atoi(task)
	if err != nil {
		return "", ""
	}
	s.eachSweep(func(id ID, rec *sweepRecord) bool {
		for _, a := range rec.Arrays {
			if a.SlurmID != array || n > a.Last-a.First {
				continue
			}
			i := a.First + n
			if i < 0 || i >= len(rec.Tasks) || rec.Tasks[i].Index != i {
				continue
			}
			sweep = id
			if td := DirFor(s.Root, rec.Tasks[i].ID); isDir(td.Path()) {
				d = td
			}
			return true
		}
		return false
	})
	return d, sweep
}

// sweepOf returns the newest of the user's sweeps whose record lists task
// id, or "".
func (s Spool) sweepOf(task ID) (sweep ID) {
	s.eachSweep(func(id ID, rec *sweepRecord) bool {
		for _, t := range rec.Tasks {
			if t.ID == task {
				sweep = id
				return true
			}
		}
		return false
	})
	return sweep
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// goneTask is the error for a sweep's task whose job dir is gone.
func goneTask(ref string, sweep ID) error {
	return NotFoundf("no job %q among your jobs: sweep %s lists it, but its job dir is gone (see 'ferry sweep show %s')", ref, sweep.Short(), sweep.Short())
}

// candidates names the first few of ids (newest first) by prefixes that tell
// them apart, and how many more there are.
func candidates(ids []ID) string {
	short := ShortUnique(ids)
	var names []string
	for _, id := range ids[:min(len(ids), maxCandidates)] {
		names = append(names, short[id])
	}
	s := strings.Join(names, ", ")
	if more := len(ids) - len(names); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// Within reports whether path lies inside the spool root.
func (s Spool) Within(path string) bool {
	rel, err := filepath.Rel(s.Root, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}
