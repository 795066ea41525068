package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Slurm's accounting (slurmdbd): what sacct and sshare say. Without
// slurmdbd both print nothing useful; these calls then return no rows,
// never an error the caller has to tell apart.

// AcctJob is a job as sacct records it.
type AcctJob struct {
	ID       string // "123", or "123_4" for an array task
	State    string // raw, e.g. "COMPLETED", "CANCELLED" ("by UID" dropped)
	ExitCode string // "0:0": the exit code and the signal
	Start    time.Time
	End      time.Time
}

// acctFields are sacct's -o fields: none a user controls.
var acctFields = []string{"JobID", "State", "ExitCode", "Start", "End"}

// AcctArgs is the sacct command line Acct runs for ids.
func AcctArgs(ids []string) ([]string, error) {
	for _, id := range ids {
		if !jobIDRE.MatchString(id) {
			return nil, fmt.Errorf("invalid Slurm job id %q", id)
		}
	}
	// -X the allocation only, not its steps; -n no header; -P "|"
	// between fields; -a every user's (root, the tracker); a window from
	// the epoch, or sacct looks at today's jobs only.
	return []string{"-X", "-n", "-P", "-a", "--noconvert", "-S", "1970-01-01", "-o", strings.Join(acctFields, ","), "-j", strings.Join(ids, ",")}, nil
}

// Acct asks sacct how the jobs ended. Jobs it does not know (or a cluster
// without accounting) are left out.
func (c *Client) Acct(ctx context.Context, ids []string) ([]AcctJob, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args, err := AcctArgs(ids)
	if err != nil {
		return nil, fmt.Errorf("sacct: %w", err)
	}
	out, err := c.Runner.Run(ctx, squeueEnv, "sacct", args...)
	if err != nil {
		return nil, err
	}
	return ParseAcct(out)
}

// ParseAcct parses the output of the command line AcctArgs builds (times
// as Unix seconds).
func ParseAcct(out []byte) ([]AcctJob, error) {
	var jobs []AcctJob
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != len(acctFields) {
			return nil, fmt.Errorf("sacct line %d: want %d fields, got %d", i+1, len(acctFields), len(f))
		}
		state, _, _ := strings.Cut(f[1], " ")
		j := AcctJob{ID: f[0], State: state, ExitCode: f[2], Start: unixOrZero(f[3]), End: unixOrZero(f[4])}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func unixOrZero(s string) time.Time {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// Share is a user's fair-share standing, as sshare reports it.
type Share struct {
	Account string
	// RawUsage is the user's decayed usage, in CPU-seconds.
	RawUsage int64
	// EffectiveUsage is the user's share of the cluster's recent usage
	// (0..1), and FairShare the factor Slurm gives the user's jobs (0..1:
	// 1 = has used nothing lately, 0.5 = used exactly their share).
	EffectiveUsage float64
	FairShare      float64
}

// ShareArgs is the sshare command line Share runs.
func ShareArgs(user string) ([]string, error) {
	if user == "" || strings.HasPrefix(user, "-") || strings.ContainsAny(user, ", \t\n|") {
		return nil, fmt.Errorf("invalid user name %q", user)
	}
	return []string{"-n", "-P", "-U", "-u", user, "-o", "Account,User,RawUsage,EffectvUsage,FairShare"}, nil
}

// Share reads user's fair-share standing; ok is false when Slurm keeps no
// accounting for them (no slurmdbd, or no association).
func (c *Client) Share(ctx context.Context, user string) (Share, bool, error) {
	args, err := ShareArgs(user)
	if err != nil {
		return Share{}, false, fmt.Errorf("sshare: %w", err)
	}
	out, err := c.Runner.Run(ctx, nil, "sshare", args...)
	if err != nil {
		return Share{}, false, err
	}
	return ParseShare(out, user)
}

// ParseShare reads user's line of the sshare output ShareArgs asks for.
func ParseShare(out []byte, user string) (Share, bool, error) {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 5 || strings.TrimSpace(f[1]) != user {
			continue
		}
		s := Share{Account: strings.TrimSpace(f[0])}
		var err error
		if s.RawUsage, err = strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64); err != nil {
			return Share{}, false, fmt.Errorf("sshare: raw usage %q: %w", f[2], err)
		}
		if s.EffectiveUsage, err = strconv.ParseFloat(strings.TrimSpace(f[3]), 64); err != nil {
			return Share{}, false, fmt.Errorf("sshare: effective usage %q: %w", f[3], err)
		}
		if s.FairShare, err = strconv.ParseFloat(strings.TrimSpace(f[4]), 64); err != nil {
			return Share{}, false, fmt.Errorf("sshare: fair share %q: %w", f[4], err)
		}
		return s, true, nil
	}
	return Share{}, false, nil
}
