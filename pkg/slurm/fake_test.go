package slurm

import (
	"context"
	"strings"
	"sync"
)

// call is one command a fakeRunner was asked to run.
type call struct {
	Env  []string
	Name string
	Args []string
}

// reply is what a fakeRunner answers.
type reply struct {
	Out string
	Err error
}

// fakeRunner records every call and answers from replies, keyed by command
// name; a missing key answers "".
type fakeRunner struct {
	mu      sync.Mutex
	calls   []call
	replies map[string]reply
}

func (f *fakeRunner) Run(_ context.Context, env []string, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{Env: env, Name: name, Args: args})
	r := f.replies[name]
	return []byte(r.Out), r.Err
}

func (f *fakeRunner) last() call {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return call{}
	}
	return f.calls[len(f.calls)-1]
}

// squeueLine renders one squeue record the way the -O format of SqueueArgs
// makes squeue print it.
func squeueLine(fields ...string) string {
	return strings.Join(fields, fieldSep) + recordEnd + "\n"
}

func sinfoLine(fields ...string) string {
	return strings.Join(fields, fieldSep) + recordEnd + "\n"
}
