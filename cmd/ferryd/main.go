// Command ferryd runs ferry's cluster daemons and Slurm hooks: the worker
// agent, the tracker, the epilog and the jobcomp hook.
package main

import (
	"os"

	"github.com/ferry-hpc/ferry/pkg/cmd/root"
	"github.com/ferry-hpc/ferry/pkg/cmd/rootd"
)

var version = "0.1.0-dev"

func main() {
	os.Exit(root.Run(version, rootd.NewCmdRoot))
}
