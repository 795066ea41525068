// Package get is `ferry get`.
package get

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
)

// Options are get's flags.
type Options struct {
	F      *factory.Factory
	Ref    string
	Dest   string
	Bundle bool
}

// NewCmdGet builds `ferry get ID`.
func NewCmdGet(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "get ID [-o DIR]",
		Short: "Copy a job's outputs, log and result to a local dir",
		Long: `Copy what a job produced into DIR (default ./ferry-<id>): its outputs/
dir, its log and its result.json. With --bundle, also unpack the project
as it was submitted into DIR/bundle/. DIR must not exist yet, or be
empty. Works on running jobs too (you get what is there so far).

` + factory.ExitCodesHelp,
		Example: "  ferry get 01jd4k\n  ferry get 4242 -o results --bundle",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runGet(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVarP(&o.Dest, "output-dir", "o", "", "where to put the files (default ./ferry-<id>)")
	cmd.Flags().BoolVar(&o.Bundle, "bundle", false, "also unpack the submitted project into DIR/bundle")
	return cmd
}

func runGet(ctx context.Context, o *Options) error {
	d, err := o.F.Resolve(ctx, o.Ref)
	if err != nil {
		return err
	}
	dest := o.Dest
	if dest == "" {
		dest = "ferry-" + d.ID().Short()
	}
	if ents, err := os.ReadDir(dest); err == nil && len(ents) > 0 {
		return factory.Usagef("%s exists and is not empty: choose another dir with -o", dest)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return factory.Usagef("%s: %v", dest, err)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	n, err := copyTree(d.Outputs(), filepath.Join(dest, job.OutputsDir))
	if err != nil {
		return fmt.Errorf("copy outputs: %w", err)
	}
	for _, name := range []string{job.LogFile, job.ResultFile, job.SpecFile, job.ParamsFile, job.MetricsFile} {
		if err := copyFile(filepath.Join(d.Path(), name), filepath.Join(dest, name), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy %s: %w", name, err)
		}
	}
	if o.Bundle {
		f, err := os.Open(d.Bundle())
		if err != nil {
			return fmt.Errorf("open bundle: %w", err)
		}
		defer f.Close()
		bd := filepath.Join(dest, "bundle")
		if err := os.Mkdir(bd, 0o755); err != nil {
			return err
		}
		if err := bundle.Unpack(ctx, f, bd, bundle.UnpackOptions{}); err != nil {
			return fmt.Errorf("unpack bundle: %w", err)
		}
	}
	fmt.Fprintln(o.F.IO.Out, dest)
	fmt.Fprintf(o.F.IO.ErrOut, "copied %d output file(s), the log and the result of job %s into %s\n", n, d.ID().Short(), dest)
	return nil
}

// copyTree copies regular files and dirs under src to dst. Symlinks are
// recreated as symlinks, never followed: a job cannot make get read
// files outside its outputs.
func copyTree(src, dst string) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == src {
				return fs.SkipAll
			}
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case de.IsDir():
			return os.MkdirAll(target, 0o755)
		case de.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case de.Type().IsRegular():
			info, err := de.Info()
			if err != nil {
				return err
			}
			n++
			return copyFile(path, target, info.Mode().Perm()|0o600)
		}
		return nil // sockets, fifos: skipped
	})
	return n, err
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
