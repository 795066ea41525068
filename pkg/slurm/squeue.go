package slurm

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Query filters Jobs. The zero Query lists every job slurmctld still knows.
type Query struct {
	User   string   // squeue -u; "" = every user
	JobIDs []string // squeue -j; "123" or "123_4"
}

// Job is one line of squeue: a job, or one task of a job array.
type Job struct {
	ID          string // "123", or "123_4" for an array task: what scancel and users see
	RawID       string // Slurm's unique numeric id: equals SLURM_JOB_ID inside the job (125 for 123_4 once it started)
	ArrayJobID  string // "123" for array tasks; for plain jobs the same as ID
	ArrayTaskID int    // -1 when not an array task
	Name        string
	State       string // raw, e.g. "RUNNING", "CANCELLED"
	Reason      string // Slurm's reason code, e.g. "Resources"; "" for "None"
	Comment     string
	User        string
	UID         int // -1 when squeue printed none
	Partition   string
	Nodes       string // hostlist, e.g. "w[1-2]"; "" when none allocated
	Submit      time.Time
	Start       time.Time // zero until the job started (a pending job's estimate is EstStart)
	End         time.Time // zero until the job ended (Slurm's estimate for a running job is dropped)
	// EstStart is when Slurm expects a pending job to start (its backfill
	// scheduler's estimate, squeue's StartTime for a pending job). It is
	// zero for any other job, and when Slurm has no estimate or gives one
	// that has already passed.
	EstStart  time.Time
	TimeLimit string // as squeue prints it: "10:00", "1-00:00:00", "UNLIMITED"
	// Priority is Slurm's scheduling priority: among pending jobs, higher
	// starts first. 0 for a held job.
	Priority int64
	WorkDir  string // the job's working dir (sbatch --chdir): a ferry job's job dir
}

// Separators. The unit separator ends each field, the record separator ends
// the last one: neither appears in anything Slurm prints except a free-text
// field a user set, and those (Name, Comment) come last.
const (
	fieldSep  = "\x1f"
	recordEnd = "\x1e"
)

// squeueFields is the -O list, in order. Fixed-alphabet fields first; then
// the ones users control: WorkDir (a path), Name and Comment, last, so that
// a separator inside them can shift only those three, never an id, a state
// or an owner. JobArrayID, not JobID: squeue's "JobID"
// is the unique numeric id (125), "JobArrayID" prints 123_4. PriorityLong,
// not Priority: "Priority" prints the priority divided by 2^32-1 as a
// fraction ("0.99998474121093"), "PriorityLong" the integer itself.
var squeueFields = []string{
	"JobArrayID", "JobID", "ArrayJobID", "ArrayTaskID", "State", "Reason",
	"UserID", "UserName", "Partition", "NodeList",
	"SubmitTime", "StartTime", "EndTime", "TimeLimit", "PriorityLong",
	"WorkDir", "Name", "Comment",
}

func init() {
	if len(squeueFields) != numFields {
		panic("slurm: numFields is not len(squeueFields)")
	}
}

// squeueFormat is the -O argument: every field with width 0 (full, no
// padding, never truncated) and a separator as its suffix.
func squeueFormat() string { return formatO(squeueFields) }

// SqueueArgs is the squeue command line Jobs runs for q.
func SqueueArgs(q Query) ([]string, error) {
	// -h no header, -a every partition (hidden ones and those the caller's
	// group cannot use too), -t all every state, -r one line per array
	// task, --noconvert plain numbers.
	args := []string{"-h", "-a", "-t", "all", "-r", "--noconvert", "-O", squeueFormat()}
	if q.User != "" {
		if strings.ContainsAny(q.User, ", \t\n") || strings.HasPrefix(q.User, "-") {
			return nil, fmt.Errorf("invalid user name %q", q.User)
		}
		args = append(args, "-u", q.User)
	}
	if len(q.JobIDs) > 0 {
		for _, id := range q.JobIDs {
			if !jobIDRE.MatchString(id) {
				return nil, fmt.Errorf("invalid Slurm job id %q", id)
			}
		}
		args = append(args, "-j", strings.Join(q.JobIDs, ","))
	}
	return args, nil
}

// squeueEnv makes squeue print times as Unix seconds.
var squeueEnv = []string{"SLURM_TIME_FORMAT=%s"}

// Jobs lists jobs with one squeue call. A job id that slurmctld has already
// purged gives an empty list, not an error; a controller that does not
// answer gives an error (never read an empty list as "all jobs ended").
func (c *Client) Jobs(ctx context.Context, q Query) ([]Job, error) {
	args, err := SqueueArgs(q)
	if err != nil {
		return nil, fmt.Errorf("squeue: %w", err)
	}
	out, err := c.Runner.Run(ctx, squeueEnv, "squeue", args...)
	if err != nil {
		if len(q.JobIDs) > 0 && isInvalidJobID(err) {
			return []Job{}, nil
		}
		return nil, err
	}
	return ParseJobs(out)
}

// ParseJobs parses the output of the squeue command line SqueueArgs builds.
// A pending job's estimated start that is already past is dropped.
func ParseJobs(out []byte) ([]Job, error) {
	return parseJobs(out, time.Now())
}

// parseJobs is ParseJobs at the time now.
func parseJobs(out []byte, now time.Time) ([]Job, error) {
	recs := bytes.Split(out, []byte(recordEnd+"\n"))
	jobs := make([]Job, 0, len(recs)-1)
	for i, rec := range recs {
		if i == len(recs)-1 {
			if len(bytes.TrimSpace(rec)) != 0 {
				return nil, fmt.Errorf("squeue: unterminated line %q", truncate(string(rec), 200))
			}
			break
		}
		// With SLURM_CLUSTERS set, squeue prefixes "CLUSTER: name" lines.
		for bytes.HasPrefix(rec, []byte("CLUSTER: ")) {
			nl := bytes.IndexByte(rec, '\n')
			if nl < 0 {
				break
			}
			rec = rec[nl+1:]
		}
		j, err := parseJob(string(rec), now)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// numFields is len(squeueFields), as a constant for parseJob's array.
const numFields = 18

func parseJob(rec string, now time.Time) (Job, error) {
	var f [numFields]string
	rest, n := rec, 0
	for ; n < numFields-1; n++ {
		field, after, ok := strings.Cut(rest, fieldSep)
		if !ok {
			break
		}
		f[n], rest = field, after
	}
	f[n] = rest
	if n++; n != numFields {
		return Job{}, fmt.Errorf("squeue: want %d fields, got %d in %q", numFields, n, truncate(rec, 200))
	}
	for i := 0; i < len(f)-3; i++ {
		f[i] = strings.TrimSpace(f[i])
	}
	j := Job{
		ID:          f[0],
		RawID:       f[1],
		ArrayJobID:  f[2],
		ArrayTaskID: -1,
		State:       f[4],
		Reason:      str(f[5]),
		User:        str(f[7]),
		UID:         -1,
		Partition:   str(f[8]),
		Nodes:       str(f[9]),
		Submit:      parseTime(f[10]),
		Start:       parseTime(f[11]),
		End:         parseTime(f[12]),
		TimeLimit:   str(f[13]),
		Priority:    parsePriority(f[14]),
		WorkDir:     str(f[15]),
		Name:        str(f[16]),
		Comment:     str(f[17]),
	}
	if j.ID == "" || j.State == "" {
		return Job{}, fmt.Errorf("squeue: no job id or state in %q", truncate(rec, 200))
	}
	if j.ArrayJobID == "" || j.ArrayJobID == "N/A" {
		j.ArrayJobID = j.ID
	}
	if n, err := strconv.Atoi(f[3]); err == nil && n >= 0 {
		j.ArrayTaskID = n
	}
	if n, err := strconv.Atoi(f[6]); err == nil {
		j.UID = n
	}
	if j.Reason == "None" {
		j.Reason = ""
	}
	switch baseState(j.State) {
	case "PENDING", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD":
		// StartTime is the scheduler's estimate; EndTime that plus the
		// time limit.
		if j.Start.After(now) {
			j.EstStart = j.Start
		}
		j.Start, j.End = time.Time{}, time.Time{}
	case "RUNNING", "CONFIGURING", "SUSPENDED", "STOPPED", "RESIZING":
		j.End = time.Time{}
	}
	return j, nil
}

// str maps squeue's spellings of "nothing" to "".
func str(s string) string {
	switch s {
	case "(null)", "N/A", "n/a":
		return ""
	}
	return s
}

// parseTime reads a time squeue printed with SLURM_TIME_FORMAT=%s. "N/A",
// "Unknown", "NONE", "0" and anything unreadable are the zero time.
func parseTime(s string) time.Time {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return time.Time{} // N/A, Unknown, NONE: no time (and no error to build)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		if n <= 0 {
			return time.Time{}
		}
		return time.Unix(n, 0)
	}
	// SLURM_TIME_FORMAT not honoured: Slurm's default ISO form, local time.
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local); err == nil {
		return t
	}
	return time.Time{}
}

// parsePriority reads squeue's PriorityLong (an unsigned 32-bit integer).
// A fraction is read as squeue's "Priority" field prints it (the priority
// over 2^32-1); anything unreadable is 0.
func parsePriority(s string) int64 {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return max(n, 0)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && f <= 1 {
		return int64(math.Round(f * math.MaxUint32))
	}
	return 0
}

// FerryID is the ferry job id carried in the comment "ferry:<id>".
func (j Job) FerryID() (job.ID, bool) {
	rest, ok := strings.CutPrefix(j.Comment, "ferry:")
	if !ok {
		return "", false
	}
	id, err := job.ParseID(rest)
	if err != nil {
		return "", false
	}
	return id, true
}

// baseState is the first word of a raw state ("CANCELLED by 0" is
// "CANCELLED"), in upper case, without sacct's truncation mark.
func baseState(raw string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(raw), " ")
	return strings.TrimRight(strings.ToUpper(w), "+")
}

// Observed maps Slurm's state onto ferry's observed state, with a reason a
// person can read.
func (j Job) Observed() (job.State, string) {
	return ObservedState(j.State, j.Reason)
}

// ObservedState maps a raw Slurm job state and reason code onto ferry's
// observed state and a human reason. A pending job's reason is "waiting: "
// and PendingReason's sentence ("waiting: other jobs have higher
// priority"), or the sentence alone when it says "waiting" itself
// ("waiting for a free node"); "waiting" when Slurm gives no reason.
func ObservedState(state, reason string) (job.State, string) {
	if reason == "None" {
		reason = ""
	}
	switch s := baseState(state); s {
	case "PENDING":
		s := PendingReason(reason)
		switch {
		case s == "":
			return job.Queued, "waiting"
		case strings.HasPrefix(s, "waiting "):
			return job.Queued, s // "waiting for a free node", not "waiting: waiting ..."
		}
		return job.Queued, "waiting: " + s
	case "RESV_DEL_HOLD":
		return job.Queued, "held: its reservation was deleted"
	case "CONFIGURING":
		return job.Running, "starting: its nodes are being set up"
	case "RUNNING":
		return job.Running, ""
	case "SUSPENDED", "STOPPED":
		return job.Running, "suspended"
	case "COMPLETING":
		return job.Completing, "ended; Slurm is cleaning up its nodes"
	case "SIGNALING":
		return job.Completing, "being signalled by Slurm"
	case "STAGE_OUT":
		return job.Completing, "ended; staging out files"
	case "COMPLETED":
		return job.Succeeded, "completed"
	case "FAILED":
		if reason == "" || reason == "NonZeroExitCode" {
			return job.Failed, "the batch script failed: see slurm.out"
		}
		return job.Failed, "the batch script failed (" + reason + "): see slurm.out"
	case "CANCELLED":
		return job.Cancelled, "cancelled"
	case "TIMEOUT":
		return job.Timeout, "hit its time limit"
	case "DEADLINE":
		return job.Timeout, "missed its deadline"
	case "OUT_OF_MEMORY":
		return job.OutOfMemory, "ran out of memory"
	case "NODE_FAIL":
		return job.NodeFail, "its node failed"
	case "BOOT_FAIL":
		return job.NodeFail, "its node failed to boot"
	case "PREEMPTED":
		return job.Preempted, "preempted by a higher-priority job"
	case "REQUEUED", "REQUEUE_FED":
		return job.Requeued, "requeued by Slurm"
	case "REQUEUE_HOLD":
		return job.Requeued, "requeued by Slurm and held"
	case "RESIZING":
		return job.Requeued, "being resized by Slurm"
	case "REVOKED":
		return job.Failed, "revoked: it runs on another cluster of the federation"
	case "SPECIAL_EXIT":
		return job.Failed, "held by Slurm after a special exit"
	default:
		if s == "" {
			return job.Unknown, "Slurm reported no state"
		}
		return job.Unknown, "unknown Slurm state " + strings.TrimSpace(state)
	}
}

// FormatJobs renders jobs the way the squeue command line SqueueArgs builds
// prints them (times as Unix seconds): the inverse of ParseJobs, for fake
// Slurm listings in tests and benchmarks. Zero times print as "N/A", an
// empty reason as "None", and a missing array task or uid as Slurm does; a
// pending job's EstStart prints as its StartTime.
func FormatJobs(jobs []Job) []byte {
	var b bytes.Buffer
	b.Grow(len(jobs) * 200)
	unix := func(t time.Time) string {
		if t.IsZero() {
			return "N/A"
		}
		return strconv.FormatInt(t.Unix(), 10)
	}
	orNA := func(s string) string {
		if s == "" {
			return "N/A"
		}
		return s
	}
	for _, j := range jobs {
		task, uid, reason, arrayJob := "N/A", "", j.Reason, j.ArrayJobID
		if j.ArrayTaskID >= 0 {
			task = strconv.Itoa(j.ArrayTaskID)
		}
		if j.UID >= 0 {
			uid = strconv.Itoa(j.UID)
		}
		if reason == "" {
			reason = "None"
		}
		if arrayJob == "" {
			arrayJob = j.ID
		}
		rawID := j.RawID
		if rawID == "" {
			rawID = j.ID
		}
		start := j.Start
		if start.IsZero() {
			start = j.EstStart
		}
		fields := []string{
			j.ID, rawID, arrayJob, task, j.State, reason,
			uid, j.User, orNA(j.Partition), j.Nodes,
			unix(j.Submit), unix(start), unix(j.End), orNA(j.TimeLimit), strconv.FormatInt(j.Priority, 10),
			orNA(j.WorkDir), orNA(j.Name), orNA(j.Comment),
		}
		for i, f := range fields {
			b.WriteString(f)
			if i == len(fields)-1 {
				b.WriteString(recordEnd + "\n")
			} else {
				b.WriteString(fieldSep)
			}
		}
	}
	return b.Bytes()
}
