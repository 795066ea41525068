// Package get is `ferry get`.
package get

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
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
dir, its log, result.json, spec.json and params.json. With --bundle, also
unpack the project as it was submitted into DIR/bundle/. Works on running
jobs too (you get what is there so far).

DIR must not exist yet, or be an empty dir: get never merges into it or
overwrites anything there. The files are copied into a temporary dir
first and moved into place only once all of them are there, so a failure
part way (or Ctrl-C) leaves DIR as it was. Prints DIR.

` + output.ExitCodes(factory.CodeNotFound),
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
	cmd.Flags().StringVarP(&o.Dest, "output-dir", "o", "", "where to put the files: a new or empty `DIR` (default ./ferry-<id>)")
	cmd.Flags().BoolVar(&o.Bundle, "bundle", false, "also unpack the submitted project into DIR/bundle")
	return cmd
}

// files are the job dir's files get copies, besides outputs/.
var files = []string{job.LogFile, job.ResultFile, job.SpecFile, job.ParamsFile}

func runGet(ctx context.Context, o *Options) error {
	d, err := o.F.Resolve(ctx, o.Ref)
	if err != nil {
		return err
	}
	dest := o.Dest
	if dest == "" {
		dest = "ferry-" + d.ID().Short()
	}
	dest = filepath.Clean(dest)
	exists, err := checkDest(dest)
	if err != nil {
		return err
	}
	// The temporary dir: beside DIR, or inside it when it is an empty dir
	// already (it may be the current dir, or a mount point, and stays).
	var tmp string
	if exists {
		tmp, err = mkdirTemp(dest, ".ferry-get-")
	} else {
		if err = os.MkdirAll(filepath.Dir(dest), 0o755); err == nil {
			tmp, err = mkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-")
		}
	}
	if err != nil {
		return fmt.Errorf("-o %s: %w", dest, err)
	}
	defer os.RemoveAll(tmp) // a no-op once it became DIR
	n, err := fill(ctx, d, tmp, o.Bundle)
	if err != nil {
		return err
	}
	if exists {
		err = moveEntries(tmp, dest)
	} else if err = os.Rename(tmp, dest); err != nil {
		if _, cerr := checkDest(dest); cerr != nil {
			err = cerr // made meanwhile, and not empty
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(o.F.IO.Out, dest)
	fmt.Fprintf(o.F.IO.ErrOut, "copied %d output file(s), the log and the result of job %s into %s\n", n, d.ID().Short(), dest)
	return nil
}

// checkDest reports whether DIR exists (as an empty dir), and refuses one
// that holds anything, or is not a dir.
func checkDest(dest string) (bool, error) {
	fi, err := os.Lstat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, factory.Usagef("-o %s: %v", dest, err)
	case !fi.IsDir():
		return false, factory.Usagef("-o %s: exists and is not a dir; choose a new or empty dir", dest)
	}
	ents, err := os.ReadDir(dest)
	if err != nil {
		return false, factory.Usagef("-o %s: %v", dest, err)
	}
	if len(ents) > 0 {
		return false, factory.Usagef("-o %s: exists and is not empty; get does not merge into it, choose a new or empty dir", dest)
	}
	return true, nil
}

// moveEntries moves what src holds into dest, which is empty: renames in
// one file system, all of them or, if one fails, none.
func moveEntries(src, dest string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	var moved []string
	for _, e := range ents {
		to := filepath.Join(dest, e.Name())
		if _, err = os.Lstat(to); err == nil {
			err = factory.Usagef("-o %s: %s appeared there meanwhile; get does not overwrite it", dest, e.Name())
		} else if err = os.Rename(filepath.Join(src, e.Name()), to); err == nil {
			moved = append(moved, e.Name())
			continue
		}
		for _, name := range moved {
			_ = os.Rename(filepath.Join(dest, name), filepath.Join(src, name))
		}
		return err
	}
	return nil
}

// mkdirTemp makes a new dir under parent with a random suffix. Unlike
// os.MkdirTemp it honours the umask (0755 &^ umask), as DIR would.
func mkdirTemp(parent, prefix string) (string, error) {
	for range 100 {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		p := filepath.Join(parent, prefix+hex.EncodeToString(b))
		err := os.Mkdir(p, 0o755)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("make a temporary dir in %s: too many tries", parent)
}

// fill copies the job's files into dir and returns how many output files
// it copied.
func fill(ctx context.Context, d job.Dir, dir string, withBundle bool) (int, error) {
	n, err := copyTree(ctx, d.Outputs(), filepath.Join(dir, job.OutputsDir))
	if err != nil {
		return 0, fmt.Errorf("copy outputs: %w", err)
	}
	for _, name := range files {
		if err := copyFile(filepath.Join(d.Path(), name), filepath.Join(dir, name), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("copy %s: %w", name, err)
		}
	}
	if !withBundle {
		return n, nil
	}
	f, err := os.Open(d.Bundle())
	if err != nil {
		return 0, fmt.Errorf("open bundle: %w", err)
	}
	defer f.Close()
	bd := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bd, 0o755); err != nil {
		return 0, err
	}
	if err := bundle.Unpack(ctx, f, bd, bundle.UnpackOptions{}); err != nil {
		return 0, fmt.Errorf("unpack bundle: %w", err)
	}
	return n, nil
}

// copyTree copies regular files and dirs under src to dst. Symlinks are
// recreated as symlinks, never followed: a job cannot make get read
// files outside its outputs.
func copyTree(ctx context.Context, src, dst string) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(path string, de fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
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
