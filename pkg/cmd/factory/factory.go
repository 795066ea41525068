package factory

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// IOStreams are a command's standard streams. Out carries only results;
// progress and diagnostics go to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY and ErrTTY say whether the streams are terminals: tables and
	// progress bars only for people, stable text for pipes.
	OutTTY bool
	ErrTTY bool
}

// System returns the process's own streams.
func System() *IOStreams {
	return &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		OutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		ErrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
}

// Factory hands commands their dependencies. Every field is a function so
// that nothing is built before a command needs it.
type Factory struct {
	IO         *IOStreams
	Config     func() (*config.Config, error)
	Slurm      func() *slurm.Client
	Executable func() (string, error)
	Now        func() time.Time
	Version    string
}

// New returns the production factory.
func New(version string) *Factory {
	// No command has flags that change the config, so it is validated as
	// soon as it is loaded.
	cfg := sync.OnceValues(func() (*config.Config, error) {
		c, err := config.Load()
		if err != nil {
			return nil, err
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return c, nil
	})
	sl := sync.OnceValue(slurm.New)
	return &Factory{
		IO:         System(),
		Config:     cfg,
		Slurm:      sl,
		Executable: os.Executable,
		Now:        time.Now,
		Version:    version,
	}
}
