package sandbox

import "github.com/ferry-hpc/ferry/pkg/job"

// The agent speaks HTTP/1.1 over a unix socket. The caller's identity is
// the socket's peer credentials, never a field of the request.
//
//	GET  /v1/health          → 200 {"ok":true,"node":"w1","docker":"ok","running":1}
//	POST /v1/run   Request   → 403 {"error":"refused: …"} or 200 and a stream
//	                           of newline-delimited JSON Frames that ends with
//	                           one "exit" or "error" frame
//	POST /v1/stop  {"slurm_job_id":"42"} → 200 once the container stopped
//	POST /v1/cleanup CleanupRequest → 200 CleanupResult  (root only)
//
// When the /v1/run connection drops, the agent stops and removes the
// container: a cancelled or killed job leaves nothing behind.
const (
	pathHealth  = "/v1/health"
	pathRun     = "/v1/run"
	pathStop    = "/v1/stop"
	pathCleanup = "/v1/cleanup"
)

// Frame is one line of a /v1/run stream.
type Frame struct {
	Type      string `json:"t"`                   // "started", "out", "exit", "error"
	Data      []byte `json:"d,omitempty"`         // out: bytes of stdout+stderr
	Container string `json:"container,omitempty"` // started
	Exit      *Exit  `json:"exit,omitempty"`      // exit
	Error     string `json:"error,omitempty"`     // error
}

// JobRef names a Slurm job in stop and cleanup calls.
type JobRef struct {
	SlurmJobID string `json:"slurm_job_id"`
}

// CleanupRequest is the epilog's: remove Slurm job SlurmJobID's containers
// on this node and, when FerryID is set, the scratch dirs of that ferry
// job (<scratch root>/<FerryID>.*) that uid UID owns.
type CleanupRequest struct {
	SlurmJobID string `json:"slurm_job_id"`
	FerryID    job.ID `json:"ferry_id,omitempty"`
	UID        int    `json:"uid,omitempty"`
}

// CleanupResult is what a cleanup removed.
type CleanupResult struct {
	Removed int      `json:"removed"`           // containers
	Scratch []string `json:"scratch,omitempty"` // scratch dir names
	// ScratchError says why some scratch could not be removed.
	ScratchError string `json:"scratch_error,omitempty"`
}

// Health is the agent's health report.
type Health struct {
	OK      bool   `json:"ok"`
	Node    string `json:"node"`
	Docker  string `json:"docker"`
	Running int    `json:"running"`
}
