// Command ferryd runs ferry's cluster daemons and Slurm hooks: the worker
// agent, the tracker, the epilog and the jobcomp hook.
package main

import (
	"os"

	"github.com/ferry-hpc/ferry/pkg/cmd/root"
	"github.com/ferry-hpc/ferry/pkg/cmd/rootd"
	"github.com/ferry-hpc/ferry/pkg/env/egress"
)

var version = "0.1.0-dev"

func main() {
	// A copy of this binary is an environment build's egress proxy.
	egress.Main()
	os.Exit(root.Run(version, rootd.NewCmdRoot))
}
