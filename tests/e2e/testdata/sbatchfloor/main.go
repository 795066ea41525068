// Command sbatchfloor is the least any Go program that submits through
// sbatch does: start, run `sbatch --parsable ARGS...` with a script on
// stdin, print the job id. TestBenchSubmitVsSbatch times it beside ferry
// submit and sbatch itself, to show what a Go CLI costs on the machine
// before it does any work of its own.
package main

import (
	"bytes"
	"os"
	"os/exec"
)

func main() {
	cmd := exec.Command("sbatch", append([]string{"--parsable"}, os.Args[1:]...)...)
	cmd.Stdin = bytes.NewReader([]byte("#!/bin/bash\ntrue\n"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Exit(1)
	}
	os.Stdout.Write(out.Bytes())
}
