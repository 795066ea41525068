// Package rootd assembles ferryd, the binary of the cluster's daemons and
// hooks: the worker agent, the Slurm epilog, the tracker and its jobcomp
// hook. They run as root or a service user and hold the Docker socket,
// Redis and Prometheus clients that the users' ferry never needs.
package rootd

import (
	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/agent"
	"github.com/ferry-hpc/ferry/pkg/cmd/configcmd"
	"github.com/ferry-hpc/ferry/pkg/cmd/dashboard"
	"github.com/ferry-hpc/ferry/pkg/cmd/envcmd"
	"github.com/ferry-hpc/ferry/pkg/cmd/epilog"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/root"
	"github.com/ferry-hpc/ferry/pkg/cmd/slurmhook"
	"github.com/ferry-hpc/ferry/pkg/cmd/tracker"
	"github.com/ferry-hpc/ferry/pkg/cmd/version"
)

// NewCmdRoot builds the `ferryd` command.
func NewCmdRoot(f *factory.Factory) *cobra.Command {
	cmd := root.Base(f, "ferryd", "ferry's cluster daemons: the worker agent, the tracker, the Slurm hooks", `ferryd runs ferry's services on the cluster (admins only):

  ferryd agent     on every worker, as root: the only process that holds the
                   Docker socket; starts each job's sandbox container
  ferryd tracker   on the head node: mirrors Slurm's job states into Redis
  ferryd dashboard on the head node: the web dashboard over Redis and the job dirs
  ferryd env       on a worker, as root: build, list and remove environments
  ferryd epilog    Slurm's Epilog on every worker: removes a job's containers
  ferryd slurm-hook  Slurm's jobcomp/script hook: tells the tracker a job ended

Users run 'ferry'.`)
	cmd.AddCommand(
		agent.NewCmdAgent(f),
		tracker.NewCmdTracker(f, nil),
		dashboard.NewCmdDashboard(f, nil),
		envcmd.NewCmdEnv(f, nil),
		epilog.NewCmdEpilog(f),
		slurmhook.NewCmdSlurmHook(f, nil),
		configcmd.NewCmdConfig(f, nil),
		version.NewCmdVersion(f),
	)
	return cmd
}
