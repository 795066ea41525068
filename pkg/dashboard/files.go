package dashboard

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// The dashboard runs as root to read every user's job dirs (mode 0700).
// So that a user cannot make it read someone else's file through a
// symlink or a hard link planted in their own job dir, every file it
// serves is opened without following links, must be a regular file owned
// by the job's owner, and outputs are resolved inside the outputs dir
// (os.Root) so "../" and links out of it are refused.

var errNotHere = errors.New("no such file")

// openJobDir opens a job's dir: not a link, a dir, owned by the job's user.
func openJobDir(j *store.Job) (*os.File, error) {
	if j.Dir == "" || !filepath.IsAbs(j.Dir) {
		return nil, errNotHere
	}
	f, err := os.OpenFile(j.Dir, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, errNotHere
	}
	if !ownedBy(f, j.UID) {
		f.Close()
		return nil, errNotHere
	}
	return f, nil
}

// ownedBy reports whether f belongs to uid (any owner when uid is unknown,
// -1, and the dashboard does not run as root: it then reads only what its
// own user may read anyway).
func ownedBy(f *os.File, uid int) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	if uid < 0 {
		return os.Geteuid() != 0
	}
	return int(st.Uid) == uid
}

// openJobFile opens a regular file directly in a job's dir.
func openJobFile(j *store.Job, name string) (*os.File, os.FileInfo, error) {
	d, err := openJobDir(j)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	fd, err := syscall.Openat(int(d.Fd()), name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, errNotHere
	}
	f := os.NewFile(uintptr(fd), filepath.Join(j.Dir, name))
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !ownedBy(f, j.UID) {
		f.Close()
		return nil, nil, errNotHere
	}
	return f, fi, nil
}

// markCancel records the desired state in the job dir (as `ferry cancel`
// does): a cancelled pending array task leaves Slurm without a trace.
func markCancel(j *store.Job) {
	d, err := openJobDir(j)
	if err != nil {
		return
	}
	defer d.Close()
	fd, err := syscall.Openat(int(d.Fd()), job.CancelFile, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	if j.UID >= 0 && os.Geteuid() == 0 {
		_ = syscall.Fchown(fd, j.UID, -1)
	}
	_ = syscall.Close(fd)
}

// logTailBytes is how much of a log the job page shows at first; the rest
// streams from there.
const logTailBytes = 64 << 10

// logTail reads the last n bytes of a job's log, from a line start, and
// returns them, their offset and the file's size.
func (s *Server) logTail(j *store.Job, n int64) (string, int64, int64, error) {
	f, fi, err := openJobFile(j, job.LogFile)
	if err != nil {
		if j.State == job.Queued {
			return "", 0, 0, nil
		}
		return "", 0, 0, fmt.Errorf("no log yet")
	}
	defer f.Close()
	size := fi.Size()
	off := max(0, size-n)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return "", 0, 0, err
	}
	if off > 0 {
		if i := strings.IndexByte(string(buf), '\n'); i >= 0 {
			buf, off = buf[i+1:], off+int64(i+1)
		}
	}
	// Stop at the last whole line: the stream goes on from there.
	if i := strings.LastIndexByte(string(buf), '\n'); i >= 0 {
		buf = buf[:i+1]
	} else {
		buf = buf[:0]
	}
	return string(buf), off, size, nil
}

// logRaw serves the log from a byte offset (?offset=N, default 0), as
// text: the CLI and a "download" link use it.
func (s *Server) logRaw(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	f, fi, err := openJobFile(j, job.LogFile)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "job "+j.ID.Short()+" has no log yet")
		return
	}
	defer f.Close()
	off, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	off = max(0, min(off, fi.Size()))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Ferry-Log-Size", strconv.FormatInt(fi.Size(), 10))
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+string(j.ID)+`.log"`)
	}
	_, _ = io.Copy(w, io.NewSectionReader(f, off, fi.Size()-off))
}

// logStream streams a log over server-sent events from a byte offset:
// ?offset=N, or the Last-Event-ID a reconnecting browser sends (each
// event's id is the offset after its bytes). Only whole lines are sent.
// When the job has ended and the log is read to its end, an "end" event
// closes the stream.
func (s *Server) logStream(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	off, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		off, _ = strconv.ParseInt(id, 10, 64)
	}
	off = max(0, off)
	sse, ok := startSSE(w)
	if !ok {
		s.fail(w, r, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	ctx := r.Context()
	tick := time.NewTicker(s.o.LogPoll)
	defer tick.Stop()
	beat := time.Now()
	// Ending is driven by the job's state in the store, re-read every
	// second, not on every poll.
	nextState := time.Now()
	ended := j.State.Terminal()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.sendLog(sse, j, off, buf)
		if err != nil {
			return
		}
		if n > 0 {
			off += n
			beat = time.Now()
			continue // more may be waiting: read again at once
		}
		if ended {
			_ = sse.event("end", strconv.FormatInt(off, 10), string(j.State))
			return
		}
		if time.Since(beat) > s.o.Heartbeat {
			if sse.comment("keep-alive") != nil {
				return
			}
			beat = time.Now()
		}
		if time.Now().After(nextState) {
			nextState = time.Now().Add(time.Second)
			if cur, err := s.o.Store.Job(ctx, j.ID); err == nil && cur.State.Terminal() {
				// One more read after the end: the last bytes may have
				// landed after the poll above.
				j, ended = cur, true
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sendLog sends the whole lines of the log after off, up to len(buf)
// bytes, as one event; it returns how many bytes it sent.
func (s *Server) sendLog(sse *sseWriter, j *store.Job, off int64, buf []byte) (int64, error) {
	f, fi, err := openJobFile(j, job.LogFile)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	if fi.Size() < off {
		// The log was truncated (a requeued job starts it again).
		off = 0
		if err := sse.event("reset", "0", ""); err != nil {
			return 0, err
		}
	}
	if fi.Size() == off {
		return 0, nil
	}
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil
	}
	data := buf[:n]
	i := strings.LastIndexByte(string(data), '\n')
	if i < 0 {
		if n < len(buf) {
			return 0, nil // a partial line: wait for its end
		}
		i = n - 1 // a line longer than the buffer: send it in pieces
	}
	data = data[:i+1]
	if err := sse.event("log", strconv.FormatInt(off+int64(len(data)), 10), string(data)); err != nil {
		return 0, err
	}
	return int64(len(data)), nil
}

// output is one file of a job's outputs dir.
type output struct {
	Path string
	Size int64
	Mod  time.Time
}

// maxOutputsListed bounds the outputs a page lists.
const maxOutputsListed = 500

// listOutputs lists the files under a job's outputs dir (links are not
// followed; not more than maxOutputsListed).
func (s *Server) listOutputs(j *store.Job) ([]output, error) {
	d, err := openJobDir(j)
	if err != nil {
		return nil, errors.New("the job dir cannot be read")
	}
	d.Close()
	root := filepath.Join(j.Dir, job.OutputsDir)
	var outs []output
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return fs.SkipAll
			}
			return nil
		}
		if len(outs) >= maxOutputsListed {
			return fs.SkipAll
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		outs = append(outs, output{Path: filepath.ToSlash(rel), Size: fi.Size(), Mod: fi.ModTime()})
		return nil
	})
	sort.Slice(outs, func(a, b int) bool { return outs[a].Path < outs[b].Path })
	return outs, err
}

// outputFile serves one output file. The path is resolved inside the
// outputs dir: "..", absolute paths and links leading out are refused.
// Files are served as attachments, except plain text and images, and a
// sandbox CSP keeps any HTML or SVG a job wrote from running as the
// dashboard.
func (s *Server) outputFile(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	rel := r.PathValue("path")
	clean := path.Clean("/" + rel)[1:]
	if rel == "" || clean != rel || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\\") || strings.Contains(rel, "\x00") {
		s.fail(w, r, http.StatusBadRequest, "bad output path "+strconv.Quote(rel)+": name a file under outputs/")
		return
	}
	d, err := openJobDir(j)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "no such output")
		return
	}
	d.Close()
	root, err := os.OpenRoot(filepath.Join(j.Dir, job.OutputsDir))
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "no such output")
		return
	}
	defer root.Close()
	if fi, err := root.Lstat(clean); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		s.fail(w, r, http.StatusNotFound, "no such output (links are not served)")
		return
	}
	f, err := root.Open(clean)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "no such output")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !ownedBy(f, j.UID) {
		s.fail(w, r, http.StatusNotFound, "no such output")
		return
	}
	ctype := mime.TypeByExtension(path.Ext(clean))
	inline := strings.HasPrefix(ctype, "text/plain") || ctype == "image/png" || ctype == "image/jpeg" || ctype == "image/gif" ||
		strings.HasSuffix(clean, ".log") || strings.HasSuffix(clean, ".csv") || strings.HasSuffix(clean, ".jsonl") || strings.HasSuffix(clean, ".json")
	switch {
	case !inline:
		w.Header().Set("Content-Disposition", "attachment; filename="+strconv.Quote(path.Base(clean)))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
	case !strings.HasPrefix(ctype, "image/"):
		ctype = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
