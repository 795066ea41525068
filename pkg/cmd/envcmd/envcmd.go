// Package envcmd is `ferryd env`: the admin's view of the environments a
// worker built (package env): build one ahead of a course, list, remove.
package envcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/env"
	envdocker "github.com/ferry-hpc/ferry/pkg/env/docker"
)

// Builder is what the subcommands need of env.Builder.
type Builder interface {
	Ensure(ctx context.Context, spec env.Spec, base string, log io.Writer) (env.ImageRef, error)
	List(ctx context.Context) ([]env.Info, error)
	Remove(ctx context.Context, name string) (env.Info, error)
}

// Options are env's flags.
type Options struct {
	F      *factory.Factory
	Output output.Format
	Image  string
	Apt    []string
	// NewBuilder makes the builder (tests: a fake); nil = this node's,
	// on the Docker Engine, from the config's environments section.
	NewBuilder func(*config.Config) (Builder, func(), error)
}

// NewCmdEnv builds `ferryd env`.
func NewCmdEnv(f *factory.Factory, newBuilder func(*config.Config) (Builder, func(), error)) *cobra.Command {
	o := &Options{F: f, NewBuilder: newBuilder}
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Build, list and remove the environments (requirements.txt, apt:) on this worker",
		Long: `A job whose project has a requirements.txt beside job.yaml, or apt:
packages in job.yaml, runs in an environment: an image built FROM the job's
(allowlisted) image with those packages, once per content hash on each
worker, by the agent (root), from the package sources of the config's
environments section. The first job to ask for one waits for its build;
every later one starts at once.

Run these as root on a worker (each worker keeps its own environments).
Build a course's environment ahead of its first deadline on every worker:

  ferryd env build ./course-project        # its requirements.txt and job.yaml's apt:

` + output.ExitCodes(factory.CodeNotFound),
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCmdBuild(o), newCmdList(o), newCmdRemove(o))
	return cmd
}

func newCmdBuild(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build PROJECT-DIR|REQUIREMENTS-FILE",
		Short: "Build an environment now, as a job asking for it would",
		Long: `Build the environment of a project dir (its requirements.txt and
job.yaml's apt: list) or of a requirements file, FROM --image (default: the
config's default_image; it must be on the images allowlist). Prints the
build's lines to stderr, then the environment's key and image. An
environment that exists is not built again.

` + output.ExitCodes(),
		Example: `  sudo ferryd env build ./course-project
  sudo ferryd env build requirements.txt --apt jq --image ferry/sandbox:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runBuild(cmd.Context(), o, args[0]) },
	}
	cmd.Flags().StringVar(&o.Image, "image", "", "the base image (on the allowlist; default: default_image)")
	cmd.Flags().StringSliceVar(&o.Apt, "apt", nil, "Debian packages to add (repeatable, or comma-separated)")
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func newCmdList(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List this worker's environments, most recently used first",
		Long:    "List this worker's environments: key, what it adds to its base (size), when it was built and last used, and what it holds.\n\n" + output.ExitCodes(),
		Example: "  sudo ferryd env ls\n  sudo ferryd env ls -o json",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runList(cmd.Context(), o) },
	}
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func newCmdRemove(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:     "rm KEY...",
		Aliases: []string{"remove"},
		Short:   "Remove environments (by key, a prefix of 4 or more characters, or image id)",
		Long: `Remove environments from this worker. One that a running job uses is
refused; the next job that asks for a removed one builds it again.

` + output.ExitCodes(factory.CodeNotFound),
		Example: "  sudo ferryd env rm 3f2a9c01",
		Args:    cobra.MinimumNArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runRemove(cmd.Context(), o, args) },
	}
}

func (o *Options) builder() (Builder, *config.Config, func(), error) {
	cfg, err := o.F.Config()
	if err != nil {
		return nil, nil, nil, err
	}
	mk := o.NewBuilder
	if mk == nil {
		mk = dockerBuilder
	}
	b, done, err := mk(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return b, cfg, done, nil
}

func dockerBuilder(cfg *config.Config) (Builder, func(), error) {
	if os.Geteuid() != 0 {
		return nil, nil, factory.Usagef("ferryd env must run as root: it builds and removes images on the Docker Engine")
	}
	ec := cfg.Environments
	eng, err := envdocker.New()
	if err != nil {
		return nil, nil, err
	}
	b, err := env.New(eng, ec.Options())
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	return b, func() { eng.Close() }, nil
}

// readSpec reads a project dir's environment, or a requirements file.
func readSpec(path string, apt []string) (env.Spec, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return env.Spec{}, factory.Usagef("%v", err)
	}
	req := path
	if fi.IsDir() {
		req = filepath.Join(path, env.RequirementsFile)
		jf, err := config.ReadJobFile(filepath.Join(path, config.JobFileName))
		switch {
		case err == nil:
			apt = append(apt, jf.Apt...)
		case !errors.Is(err, os.ErrNotExist):
			return env.Spec{}, factory.Usagef("%v", err)
		}
	}
	var pip []string
	if f, err := os.Open(req); err == nil {
		defer f.Close()
		if pip, err = env.ParseRequirements(f); err != nil {
			return env.Spec{}, factory.Usagef("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	} else if !errors.Is(err, os.ErrNotExist) || !fi.IsDir() {
		return env.Spec{}, factory.Usagef("%v", err)
	}
	spec, err := env.NewSpec(pip, apt)
	if err != nil {
		return env.Spec{}, factory.Usagef("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if spec.Empty() {
		return env.Spec{}, factory.Usagef("%s asks for nothing: no requirements and no apt packages", path)
	}
	return spec, nil
}

func runBuild(ctx context.Context, o *Options, path string) error {
	spec, err := readSpec(path, o.Apt)
	if err != nil {
		return err
	}
	b, cfg, done, err := o.builder()
	if err != nil {
		return err
	}
	defer done()
	base := o.Image
	if base == "" {
		base = cfg.DefaultImage
	}
	if err := cfg.ImageAllowed(base); err != nil {
		return factory.Usagef("%v", err)
	}
	start := time.Now()
	ref, err := b.Ensure(ctx, spec, base, o.F.IO.ErrOut)
	if err != nil {
		return err
	}
	if o.Output == output.JSON {
		return output.WriteJSON(o.F.IO.Out, struct {
			env.ImageRef
			Spec env.Spec `json:"spec"`
		}{ref, spec})
	}
	fmt.Fprintf(o.F.IO.Out, "environment %s (%s) on %s: image %s (%s)\n", env.Short(ref.Key), spec.Summary(), base, ref.ID,
		time.Since(start).Round(time.Millisecond))
	return nil
}

func runList(ctx context.Context, o *Options) error {
	b, _, done, err := o.builder()
	if err != nil {
		return err
	}
	defer done()
	list, err := b.List(ctx)
	if err != nil {
		return err
	}
	if o.Output == output.JSON {
		if list == nil {
			list = []env.Info{}
		}
		return output.WriteJSON(o.F.IO.Out, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(o.F.IO.Out, "No environment on this worker.")
		return nil
	}
	rows := make([][]string, 0, len(list))
	for _, in := range list {
		used := "never"
		if !in.LastUsed.IsZero() {
			used = in.LastUsed.Local().Format("2006-01-02 15:04")
		}
		rows = append(rows, []string{env.Short(in.Key), config.Size(in.OwnSize).String(),
			in.Created.Local().Format("2006-01-02 15:04"), used, output.Escape(in.Spec.Summary())})
	}
	return output.Table(o.F.IO.Out, o.F.IO.OutTTY, []string{"KEY", "SIZE", "BUILT", "LAST USED", "HOLDS"}, rows)
}

func runRemove(ctx context.Context, o *Options, names []string) error {
	b, _, done, err := o.builder()
	if err != nil {
		return err
	}
	defer done()
	var errs []error
	for _, n := range names {
		in, err := b.Remove(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.F.IO.Out, "removed environment %s (%s, %s)\n", env.Short(in.Key), in.Spec.Summary(), config.Size(in.OwnSize))
	}
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, env.ErrNotFound) {
			return &factory.ExitError{Code: factory.CodeNotFound, Err: err}
		}
		return err
	}
	return nil
}
