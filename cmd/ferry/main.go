// Command ferry runs students' and researchers' code on a Slurm cluster,
// each job alone on an exclusive worker, in a single-use sandbox container.
package main

import (
	"os"

	"github.com/ferry-hpc/ferry/pkg/cmd/root"
)

var version = "0.1.0-dev"

func main() {
	os.Exit(root.Main(version))
}
