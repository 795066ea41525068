package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/ferry-hpc/ferry/pkg/atomicfile"
)

// Result is how a job ended, as the sandbox (or the epilog) saw it. It is
// written once, atomically, to result.json; without slurmdbd it is the record
// of a job's end.
type Result struct {
	State       State  `json:"state"`
	Reason      string `json:"reason"`
	ExitCode    int    `json:"exit_code"`
	Node        string `json:"node,omitempty"`
	SlurmJobID  string `json:"slurm_job_id,omitempty"`
	Image       string `json:"image,omitempty"`
	ImageDigest string `json:"image_digest,omitempty"`
	// Environment is the key (content hash) of the environment the job ran
	// in, whose image is ImageDigest; "" for the plain image.
	Environment string    `json:"environment,omitempty"`
	BatchStart  time.Time `json:"batch_start,omitzero"` // when `ferry sandbox run` began on the worker
	Started     time.Time `json:"started,omitzero"`     // when the container started
	Ended       time.Time `json:"ended"`
	WrittenBy   string    `json:"written_by"` // "sandbox" or "epilog"
}

// ReadResult reads result.json from a job dir. A missing file returns
// (nil, nil): the job has not ended, or ended without a record.
func ReadResult(d Dir) (*Result, error) {
	data, err := os.ReadFile(d.Result())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", d.Result(), err)
	}
	return &r, nil
}

// WriteResult writes result.json atomically, readable only by the owner.
func WriteResult(d Dir, r *Result) error {
	return atomicfile.WriteJSON(d.Result(), r, 0o600)
}

// ReadSpec reads spec.json from a job dir.
func ReadSpec(d Dir) (*Spec, error) {
	data, err := os.ReadFile(d.Spec())
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", d.Spec(), err)
	}
	return &s, nil
}
