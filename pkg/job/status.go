package job

import (
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/env"
)

// SlurmView is what Slurm said about a job in one listing.
type SlurmView struct {
	Known  bool   // the job is in Slurm's listing
	ID     string // its Slurm id there
	State  State
	Reason string
	Node   string
	Start  time.Time
	End    time.Time
	// EstStart is Slurm's estimate of a pending job's start; zero when it
	// has none.
	EstStart time.Time
}

// Status is a job's observed state, combined from its spec, what Slurm says
// and its result.json. It is what `ferry ls` and `ferry status` show.
type Status struct {
	ID       ID     `json:"id"`
	Project  string `json:"project"`
	Name     string `json:"name,omitempty"`
	User     string `json:"user"`
	SlurmID  string `json:"slurm_id,omitempty"`
	State    State  `json:"state"`
	Reason   string `json:"reason,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Node     string `json:"node,omitempty"`
	Image    string `json:"image"`
	// EnvSpec is what the job asked its environment for (requirements.txt,
	// apt:); Environment is that environment's key and ImageDigest the
	// image it ran in, once result.json says so.
	EnvSpec     *env.Spec `json:"env_spec,omitempty"`
	Environment string    `json:"environment,omitempty"`
	ImageDigest string    `json:"image_digest,omitempty"`
	Command     []string  `json:"command"`
	Submitted   time.Time `json:"submitted"`
	Started     time.Time `json:"started,omitzero"`
	Ended       time.Time `json:"ended,omitzero"`
	Dir         string    `json:"dir"`
	// For a queued job: Slurm's estimate of its start (when Slurm made
	// one), and its place in its partition's queue among every user's
	// pending jobs, as Slurm orders them (observe fills the place).
	EstStart      time.Time `json:"est_start,omitzero"`
	QueuePosition int       `json:"queue_position,omitempty"`
	QueueLength   int       `json:"queue_length,omitempty"`
}

// LostAfter is how long a job may be missing from Slurm, without a result,
// before it counts as lost (covers the moment between sbatch and squeue).
const LostAfter = 60 * time.Second

// Observe combines the three sources. slurmErr is non-nil when Slurm did not
// answer: then a job without a result is unknown, never finished.
func Observe(spec *Spec, slurmID string, sv SlurmView, slurmErr error, res *Result, now time.Time) Status {
	return ObserveWithDesire(spec, slurmID, sv, slurmErr, res, false, now)
}

// ObserveWithDesire is Observe knowing whether the user asked to cancel.
func ObserveWithDesire(spec *Spec, slurmID string, sv SlurmView, slurmErr error, res *Result, cancelRequested bool, now time.Time) Status {
	if slurmID == "" && sv.Known {
		slurmID = sv.ID // the hint file is not written yet, or was lost
	}
	st := Status{
		ID: spec.ID, Project: spec.Project, Name: spec.Name, User: spec.User, SlurmID: slurmID,
		Image: spec.Image, Command: spec.Command, Submitted: spec.Submitted, Dir: spec.Dir,
		Node: sv.Node, Started: sv.Start, Ended: sv.End, EnvSpec: spec.Environment,
	}
	if res != nil {
		st.Environment, st.ImageDigest = res.Environment, res.ImageDigest
	}
	if res != nil && res.State.Terminal() {
		st.State, st.Reason = res.State, res.Reason
		code := res.ExitCode
		if code >= 0 {
			st.ExitCode = &code
		}
		st.Node, st.Started, st.Ended = res.Node, res.Started, res.Ended
		// Slurm knows better why it stopped a job from outside, and the
		// epilog only records that the sandbox could not.
		if sv.Known {
			switch {
			case sv.State == Timeout || sv.State == NodeFail || sv.State == Preempted:
				st.State, st.Reason = sv.State, sv.Reason
			case res.WrittenBy == "epilog" && sv.State.Terminal():
				st.State = sv.State
			}
		}
		return st
	}
	switch {
	case slurmErr != nil:
		st.State, st.Reason = Unknown, "Slurm did not answer: "+slurmErr.Error()
	case sv.Known && sv.State.Terminal():
		st.State, st.Reason = sv.State, sv.Reason
		switch sv.State {
		case Cancelled:
			if sv.Start.IsZero() {
				st.Reason = "cancelled before it started"
			}
		case Succeeded, Failed:
			// Say "see slurm.out" once, whatever Slurm's reason already says.
			st.Reason = strings.TrimSuffix(sv.Reason, ": see slurm.out") + " (no result.json was written: see slurm.out)"
		}
	case sv.Known:
		st.State, st.Reason = sv.State, sv.Reason
		if st.State == Queued {
			st.EstStart = sv.EstStart
		}
	case cancelRequested:
		st.State, st.Reason = Cancelled, "cancelled before it started"
	case now.Sub(spec.Submitted) < LostAfter:
		st.State, st.Reason = Queued, "submitted" // sbatch may not have returned yet
	case slurmID == "":
		st.State, st.Reason = Lost, "never reached Slurm: sbatch failed or was interrupted"
	default:
		st.State, st.Reason = Lost, "Slurm no longer knows this job and it left no result.json"
	}
	return st
}
