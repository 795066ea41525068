// Command sbatchfloor is the least any Go program that submits through
// sbatch does: start, run `sbatch --parsable ARGS...` with a script on
// stdin, print the job id. TestBenchSubmitVsSbatch times it beside ferry
// submit and sbatch itself, to show what a Go CLI costs on the machine
// before it does any work of its own.
//
// With -feed-after D as its first argument it waits D after starting
// sbatch before handing it the script, and prints a second line, the
// microseconds from the hand-over to sbatch's exit: the part of sbatch
// that no work done before the hand-over can overlap.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"time"
)

func main() {
	args := os.Args[1:]
	var feedAfter time.Duration
	if len(args) >= 2 && args[0] == "-feed-after" {
		d, err := time.ParseDuration(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "sbatchfloor:", err)
			os.Exit(2)
		}
		feedAfter, args = d, args[2:]
	}
	script := []byte("#!/bin/bash\ntrue\n")
	cmd := exec.Command("sbatch", append([]string{"--parsable"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if feedAfter == 0 {
		cmd.Stdin = bytes.NewReader(script)
		if err := cmd.Run(); err != nil {
			os.Exit(1)
		}
		os.Stdout.Write(out.Bytes())
		return
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		os.Exit(1)
	}
	if err := cmd.Start(); err != nil {
		os.Exit(1)
	}
	time.Sleep(feedAfter)
	fed := time.Now()
	_, werr := in.Write(script)
	in.Close()
	if err := cmd.Wait(); err != nil || werr != nil {
		os.Exit(1)
	}
	fmt.Printf("%s%d\n", out.Bytes(), time.Since(fed).Microseconds())
}
