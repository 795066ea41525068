package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Store is what the tracker needs from the job store.
type Store interface {
	// Load reads everything the store holds about jobs and nodes, and its
	// generation: what a restarted tracker reconciles against.
	Load(ctx context.Context) (*Snapshot, error)
	// Apply writes a batch in one round trip, all or nothing, and returns
	// the store's generation after it (the batch's Gen + 1 when nobody
	// else wrote and nothing was lost).
	Apply(ctx context.Context, b *Batch) (int64, error)
	// Generation reads the generation without writing anything.
	Generation(ctx context.Context) (int64, error)
}

// Job is one job as the store holds it: the hash job:<id>.
type Job struct {
	ID            job.ID
	User          string
	UID           int // -1 when unknown
	Project       string
	Name          string
	SlurmID       string // "123", or "123_4" for an array task
	ArrayIndex    int    // the Slurm array task id; -1 when not an array task
	State         job.State
	Reason        string
	ExitCode      *int
	Node          string
	Submitted     time.Time
	Started       time.Time
	Ended         time.Time
	EstStart      time.Time       // Slurm's estimate of when a queued job starts; zero when it has none, and when the job is not queued
	Priority      int64           // Slurm's priority of a queued job (higher starts first); 0 when held, and when the job is not queued
	Sweep         job.ID          // the sweep the job is a task of; "" when none
	TaskIndex     int             // the task's index in its sweep (its place in the sweep's grid); meaningless when Sweep is ""
	Params        json.RawMessage // a JSON object, or nil
	Metrics       json.RawMessage // the latest value of each metric, a JSON object, or nil
	MetricsOffset int64           // bytes of outputs/metrics.jsonl already read
	Dir           string
	Image         string
	Source        Source    // the path that delivered the current State
	Updated       time.Time // when the tracker last changed this hash (ignored when comparing)
}

// Source is the path by which the tracker learned a job's state: it is
// kept with the state in the job's hash and in each state event.
type Source string

// Sources.
const (
	SourceHook   Source = "hook"   // Slurm's jobcomp hook (`ferryd slurm-hook`) pushed the job's end or requeue
	SourceSqueue Source = "squeue" // a line of the squeue listing (polling)
	SourceResult Source = "result" // the job dir's result.json, read when the job left the listing or after Slurm ended it
	SourceCancel Source = "cancel" // the job dir's cancel marker: a job cancelled while queued left Slurm without a trace
	SourceScan   Source = "scan"   // the spool scan found the job dir, and Slurm does not list the job (yet)
	SourceLost   Source = "lost"   // the grace period passed with the job in neither Slurm's listing nor a result.json
	SourceSacct  Source = "sacct"  // Slurm's accounting (sacct) said how a job that left the listing without a result.json ended
)

// JobChange writes one job. Old is what the store holds (nil: nothing, or
// unknown); only the fields that differ from Old are written. With Old nil
// the hash is replaced whole and the job is (re)added to the indexes.
type JobChange struct {
	Old *Job
	New Job
}

// MetricPoints appends points (each a JSON object, one line of the job's
// metrics.jsonl) to a job's metric history. Reset first empties it.
type MetricPoints struct {
	ID     job.ID
	Reset  bool
	Points []json.RawMessage
}

// Node is one Slurm node as the store holds it (the hash nodes, field = name).
type Node struct {
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Flags      string    `json:"flags,omitempty"`
	Responding bool      `json:"responding"`
	CPUs       int       `json:"cpus"`
	MemBytes   int64     `json:"mem_bytes"`
	Reason     string    `json:"reason,omitempty"`
	Partitions []string  `json:"partitions,omitempty"`
	Updated    time.Time `json:"updated"`
}

// Event types.
const (
	EventState   = "state"   // a job changed state (one per change; terminal ones exactly once)
	EventResync  = "resync"  // the store was rebuilt: reload everything
	EventRemoved = "removed" // a job's hash was deleted (its job dir is gone)
)

// Event is one entry of the event stream.
type Event struct {
	StreamID string    `json:"-"` // Redis stream id, on read
	Type     string    `json:"type"`
	ID       job.ID    `json:"id,omitempty"`
	User     string    `json:"user,omitempty"`
	Project  string    `json:"project,omitempty"`
	SlurmID  string    `json:"slurm_id,omitempty"`
	State    job.State `json:"state,omitempty"`
	Prev     job.State `json:"prev,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Source   Source    `json:"source,omitempty"` // state events: the path that delivered the change
	At       time.Time `json:"at"`
}

// Batch is what the tracker writes in one round trip.
type Batch struct {
	Jobs    []JobChange
	Removed []Job // hashes to delete, with their index entries and metrics
	Events  []Event
	Metrics []MetricPoints
	// Nodes replaces the node hash's fields; NodesFull deletes the fields
	// of nodes not in Nodes first.
	Nodes     []Node
	NodesFull bool
	// JobsFull says Jobs holds every job the store should hold, each with
	// Old nil (a rebuild): the queue set is emptied first and rebuilt from
	// Jobs alone.
	JobsFull bool
	// Meta sets fields of the tracker's own hash (health, last tick).
	Meta map[string]string
}

// Empty reports whether the batch writes nothing but the generation.
func (b *Batch) Empty() bool {
	return len(b.Jobs) == 0 && len(b.Removed) == 0 && len(b.Events) == 0 && len(b.Metrics) == 0 &&
		len(b.Nodes) == 0 && !b.NodesFull && !b.JobsFull && len(b.Meta) == 0
}

// Snapshot is what Load read.
type Snapshot struct {
	Gen   int64
	Jobs  map[job.ID]*Job
	Nodes map[string]Node
}

// Page selects jobs from one index: newest first from the time-sorted ones
// (all jobs, a user's, a project's), or one sweep's tasks in task order
// (index 0 first), not newest first. Sweep wins over User, User over
// Project.
type Page struct {
	Sweep   job.ID // the sweep's tasks, in task order
	User    string // the user's index; "" = all jobs (unless Project is set)
	Project string // the project's index
	Offset  int64
	Limit   int64 // 0 = 50
}
