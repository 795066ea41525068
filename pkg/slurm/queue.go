package slurm

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Pending is one pending job, or array task, in Slurm's queue.
type Pending struct {
	ID        string // "123", or "123_4" for an array task
	Priority  int64
	Partition string
}

// pendingFields are the -O fields of the pending listing: none a user
// controls, so no separator can be forged into them.
var pendingFields = []string{"JobArrayID", "PriorityLong", "Partition"}

// PendingArgs is the squeue command line Pending runs: every user's
// pending jobs, one line per array task.
func PendingArgs() []string {
	return []string{"-h", "-a", "-r", "-t", "PENDING", "--noconvert", "-O", formatO(pendingFields)}
}

// Pending lists every pending job in one squeue call: what a job's place in
// the queue is counted against.
func (c *Client) Pending(ctx context.Context) ([]Pending, error) {
	out, err := c.Runner.Run(ctx, squeueEnv, "squeue", PendingArgs()...)
	if err != nil {
		return nil, err
	}
	return ParsePending(out)
}

// ParsePending parses the output of the command line PendingArgs builds.
func ParsePending(out []byte) ([]Pending, error) {
	var jobs []Pending
	for i, rec := range bytes.Split(out, []byte(recordEnd+"\n")) {
		rec = bytes.TrimSpace(rec)
		if len(rec) == 0 {
			continue
		}
		f := strings.Split(string(rec), fieldSep)
		if len(f) != len(pendingFields) {
			return nil, fmt.Errorf("squeue pending record %d: want %d fields, got %d", i+1, len(pendingFields), len(f))
		}
		p := Pending{ID: strings.TrimSpace(f[0]), Partition: strings.TrimSpace(f[2])}
		if s := strings.TrimSpace(f[1]); s != "" && s != "N/A" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("squeue pending record %d: priority %q: %w", i+1, s, err)
			}
			p.Priority = n
		}
		jobs = append(jobs, p)
	}
	return jobs, nil
}

// QueuePlace is a pending job's place in its partition's queue, as Slurm
// orders it (higher priority first, then older job ids first; an array's
// tasks in task order), and how many jobs wait in that partition. pos is 0
// when the job is not in the listing. A job held at priority 0 waits
// behind every other.
func QueuePlace(pending []Pending, id string) (pos, total int) {
	var me *Pending
	for i := range pending {
		if pending[i].ID == id {
			me = &pending[i]
			break
		}
	}
	if me == nil {
		return 0, 0
	}
	for i := range pending {
		p := &pending[i]
		if p.Partition != me.Partition {
			continue
		}
		total++
		if p == me || p.Priority > me.Priority || (p.Priority == me.Priority && idBefore(p.ID, me.ID)) {
			pos++
		}
	}
	return pos, total
}

// idBefore orders Slurm ids "123" and "123_4" by job, then task.
func idBefore(a, b string) bool {
	aj, at := splitTask(a)
	bj, bt := splitTask(b)
	if aj != bj {
		return aj < bj
	}
	return at < bt
}

func splitTask(id string) (int64, int64) {
	j, t, _ := strings.Cut(id, "_")
	jn, _ := strconv.ParseInt(j, 10, 64)
	tn, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		tn = -1
	}
	return jn, tn
}

// FormatPending renders pending jobs the way the command line PendingArgs
// builds prints them: the inverse of ParsePending, for fake listings.
func FormatPending(jobs []Pending) []byte {
	var b bytes.Buffer
	for _, j := range jobs {
		b.WriteString(j.ID + fieldSep + strconv.FormatInt(j.Priority, 10) + fieldSep + j.Partition + recordEnd + "\n")
	}
	return b.Bytes()
}

// FormatShares renders sshare's output as ShareArgs asks for it: the
// inverse of ParseShare, for fake listings.
func FormatShares(users map[string]Share) []byte {
	var b bytes.Buffer
	for u, s := range users {
		fmt.Fprintf(&b, "%s|%s|%d|%f|%f\n", s.Account, u, s.RawUsage, s.EffectiveUsage, s.FairShare)
	}
	return b.Bytes()
}
