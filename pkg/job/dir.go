package job

import "path/filepath"

// File names inside a job dir. The layout is part of ferry's interface: the
// sandbox, the epilog, the tracker and users' own scripts read it.
const (
	SpecFile    = "spec.json"
	ParamsFile  = "params.json"
	BundleFile  = "bundle.tar.zst"
	ScriptFile  = "job.sbatch"
	SlurmOut    = "slurm.out"
	LogFile     = "log"
	ResultFile  = "result.json"
	OutputsDir  = "outputs"
	MetricsFile = "metrics.jsonl"
	SlurmIDFile = "slurm_id"
	// CancelFile records that the user asked to cancel the job (the desired
	// state): a pending array task that is cancelled vanishes from Slurm
	// without a trace, and this tells "cancelled" from "lost".
	CancelFile = "cancel_requested"
	// SweepsDir holds the sweeps under the spool root; its name is not an
	// id, so job listings pass it by.
	SweepsDir = ".sweeps"
	// SweepFile is a sweep's own record, in <spool>/.sweeps/<id>/.
	SweepFile = "sweep.json"
)

// Dir is a job dir, <spool>/<id>.
type Dir string

// DirFor returns the job dir for id under spool.
func DirFor(spool string, id ID) Dir { return Dir(filepath.Join(spool, string(id))) }

func (d Dir) Path() string     { return string(d) }
func (d Dir) ID() ID           { return ID(filepath.Base(string(d))) }
func (d Dir) Spec() string     { return filepath.Join(string(d), SpecFile) }
func (d Dir) Params() string   { return filepath.Join(string(d), ParamsFile) }
func (d Dir) Bundle() string   { return filepath.Join(string(d), BundleFile) }
func (d Dir) Script() string   { return filepath.Join(string(d), ScriptFile) }
func (d Dir) SlurmOut() string { return filepath.Join(string(d), SlurmOut) }
func (d Dir) Log() string      { return filepath.Join(string(d), LogFile) }
func (d Dir) Result() string   { return filepath.Join(string(d), ResultFile) }
func (d Dir) Outputs() string  { return filepath.Join(string(d), OutputsDir) }
func (d Dir) Metrics() string  { return filepath.Join(string(d), OutputsDir, MetricsFile) }
func (d Dir) SlurmID() string  { return filepath.Join(string(d), SlurmIDFile) }
func (d Dir) Cancel() string   { return filepath.Join(string(d), CancelFile) }
