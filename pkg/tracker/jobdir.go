package tracker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// The tracker runs as root and reads files that users write. Every read
// goes through jobFile: the job dir must be a real directory (not a
// symlink) owned by the job's uid, every path component inside it is
// opened with O_NOFOLLOW, the file must be a regular file owned by the
// same uid (so a hard link to someone else's file is refused), and at most
// a fixed number of bytes are read. A FIFO cannot block it (O_NONBLOCK).

// errNotOwned is a job dir or file that does not belong to the job's user.
var errNotOwned = errors.New("not owned by the job's user")

// Limits on what is read from a job dir.
const (
	maxSpecBytes   = 1 << 20
	maxResultBytes = 64 << 10
	maxSmallFile   = 4 << 10
)

// dirOwner returns the uid owning the job dir path, refusing a symlink.
func dirOwner(path string) (int, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return -1, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return -1, fmt.Errorf("%s is not a directory", path)
	}
	return int(st.Uid), nil
}

// openIn opens rel (slash-separated, no "..") inside the dir at path,
// owned by uid, without following any symlink, and checks that the
// result is a regular file owned by uid.
func openIn(path string, uid int, rel string) (*os.File, error) {
	dfd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(dfd, &st); err != nil || int(st.Uid) != uid {
		syscall.Close(dfd)
		if err == nil {
			err = errNotOwned
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			syscall.Close(dfd)
			return nil, fmt.Errorf("bad path %q", rel)
		}
		flags := syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
		if i < len(parts)-1 {
			flags |= syscall.O_DIRECTORY
		} else {
			flags |= syscall.O_NONBLOCK | syscall.O_NOCTTY
		}
		fd, err := syscall.Openat(dfd, p, flags, 0)
		syscall.Close(dfd)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: filepath.Join(path, rel), Err: err}
		}
		dfd = fd
	}
	if err := syscall.Fstat(dfd, &st); err != nil {
		syscall.Close(dfd)
		return nil, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(dfd)
		return nil, fmt.Errorf("%s is not a regular file", filepath.Join(path, rel))
	}
	if int(st.Uid) != uid {
		syscall.Close(dfd)
		return nil, &os.PathError{Op: "open", Path: filepath.Join(path, rel), Err: errNotOwned}
	}
	return os.NewFile(uintptr(dfd), filepath.Join(path, rel)), nil
}

// readIn reads a whole small file inside a job dir; more than max bytes is
// an error.
func readIn(path string, uid int, rel string, max int64) ([]byte, error) {
	f, err := openIn(path, uid, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.Name(), max)
	}
	return data, nil
}

// dirFiles is what the tracker reads from one job dir.
type dirFiles struct {
	path string
	uid  int
}

// spec reads spec.json, and the sweep the job is a task of (read from
// the same file, so that the tracker works whether or not job.Spec knows
// sweeps).
func (d dirFiles) spec() (*job.Spec, job.ID, error) {
	data, err := readIn(d.path, d.uid, job.SpecFile, maxSpecBytes)
	if err != nil {
		return nil, "", err
	}
	var s job.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", filepath.Join(d.path, job.SpecFile), err)
	}
	var sw struct {
		Sweep *struct {
			ID job.ID `json:"id"`
		} `json:"sweep"`
	}
	_ = json.Unmarshal(data, &sw)
	var sweep job.ID
	if sw.Sweep != nil {
		sweep = sw.Sweep.ID
	}
	return &s, sweep, nil
}

// result reads result.json; a missing file is (nil, nil).
func (d dirFiles) result() (*job.Result, error) {
	data, err := readIn(d.path, d.uid, job.ResultFile, maxResultBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r job.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(d.path, job.ResultFile), err)
	}
	return &r, nil
}

// slurmID reads the Slurm job id recorded after sbatch, or "".
func (d dirFiles) slurmID() string {
	data, err := readIn(d.path, d.uid, job.SlurmIDFile, maxSmallFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// cancelRequested reports whether the user asked to cancel the job (the
// desired state), so that a pending job that vanishes from Slurm is
// cancelled, not lost.
func (d dirFiles) cancelRequested() bool {
	f, err := openIn(d.path, d.uid, job.CancelFile)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// metricsRel is outputs/metrics.jsonl, relative to the job dir.
var metricsRel = job.OutputsDir + "/" + job.MetricsFile

// Limits on reading metrics.jsonl: per job and pass, and per line.
const (
	maxMetricsRead = 1 << 20
	maxMetricLine  = 64 << 10
)

// metricLine is one line of metrics.jsonl, as ferry's Python helpers
// write it: {"name", "value", "step", "time"}. The name may hold any
// character.
type metricLine struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// readMetrics reads the complete lines of metrics.jsonl after offset:
// each valid one as a compact JSON point, and the new offset. A file that
// shrank starts again from 0 (reset is then true). Lines that are not
// metrics are skipped, and so are lines longer than maxMetricLine.
func (d dirFiles) readMetrics(offset int64) (points []json.RawMessage, latest map[string]json.RawMessage, next int64, reset bool, err error) {
	f, err := openIn(d.path, d.uid, metricsRel)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, offset, false, nil
	}
	if err != nil {
		return nil, nil, offset, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, offset, false, err
	}
	if fi.Size() < offset {
		offset, reset = 0, true
	}
	if fi.Size() == offset {
		return nil, nil, offset, reset, nil
	}
	n := min(fi.Size()-offset, maxMetricsRead)
	buf := make([]byte, n)
	got, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, offset, reset, err
	}
	buf = buf[:got]
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		if int64(len(buf)) >= maxMetricLine {
			// One line longer than any metric: skip what was read.
			return nil, nil, offset + int64(len(buf)), reset, nil
		}
		return nil, nil, offset, reset, nil // a line still being written
	}
	latest = map[string]json.RawMessage{}
	for _, line := range bytes.Split(buf[:end], []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || len(line) > maxMetricLine {
			continue
		}
		var m metricLine
		if json.Unmarshal(line, &m) != nil || m.Name == "" || len(m.Value) == 0 {
			continue
		}
		var c bytes.Buffer
		if json.Compact(&c, line) != nil {
			continue
		}
		points = append(points, json.RawMessage(c.Bytes()))
		var v bytes.Buffer
		if json.Compact(&v, m.Value) == nil {
			latest[m.Name] = json.RawMessage(v.Bytes())
		}
	}
	return points, latest, offset + int64(end) + 1, reset, nil
}
