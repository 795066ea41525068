package job

import "fmt"

// State is the observed state of a job: what Slurm and the sandbox report.
// The desired state (run or cancel) is kept apart, in the spool and Slurm.
type State string

const (
	Queued      State = "queued"
	Running     State = "running"
	Completing  State = "completing"
	Succeeded   State = "succeeded"
	Failed      State = "failed"
	Cancelled   State = "cancelled"
	Timeout     State = "timeout"
	OutOfMemory State = "out_of_memory"
	NodeFail    State = "node_fail"
	Preempted   State = "preempted"
	Requeued    State = "requeued"
	Lost        State = "lost"
	Unknown     State = "unknown"
)

// States lists every observed state, in lifecycle order.
var States = []State{Queued, Running, Completing, Requeued, Succeeded, Failed, Cancelled, Timeout, OutOfMemory, NodeFail, Preempted, Lost, Unknown}

// Terminal reports whether a job in state s will never change again.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Cancelled, Timeout, OutOfMemory, NodeFail, Preempted, Lost:
		return true
	}
	return false
}

// Active reports whether the job is waiting for or holding a node.
func (s State) Active() bool {
	switch s {
	case Queued, Running, Completing, Requeued:
		return true
	}
	return false
}

// ParseState checks that s names a state.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown state %q (want one of %v)", s, States)
}
