// Package initcmd is `ferry init`.
package initcmd

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
)

//go:embed template
var tmpl embed.FS

// files maps template names to the names they get in the project.
var files = map[string]string{
	"main.py":     "main.py",
	"job.yaml":    "job.yaml",
	"ferryignore": ".ferryignore",
	"README.md":   "README.md",
}

// Options are init's arguments.
type Options struct {
	F    *factory.Factory
	Path string
}

// NewCmdInit builds `ferry init NAME`.
func NewCmdInit(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	return &cobra.Command{
		Use:   "init NAME",
		Short: "Create a new project dir to submit",
		Long: `Create the dir NAME with a small example project: main.py (prints, reads
its parameters, writes a file to the outputs dir, logs a metric), job.yaml
(command, resources, parameters), data/, .ferryignore and a README.
The project is named after the dir's last element.

` + factory.ExitCodesHelp,
		Example: "  ferry init hello && ferry submit --wait -f hello",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runInit(cmd.Context(), o)
		},
	}
}

func runInit(_ context.Context, o *Options) error {
	project := filepath.Base(filepath.Clean(o.Path))
	if err := job.ValidateProject(project); err != nil {
		return &factory.UsageError{Err: err}
	}
	if ents, err := os.ReadDir(o.Path); err == nil && len(ents) > 0 {
		return factory.Usagef("%s already exists and is not empty: choose a new name", o.Path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return factory.Usagef("%s: %v", o.Path, err)
	}
	// Render everything first, so a template error leaves nothing behind.
	rendered := map[string][]byte{}
	for src, dst := range files {
		raw, err := tmpl.ReadFile("template/" + src)
		if err != nil {
			return err
		}
		t, err := template.New(src).Parse(string(raw))
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, struct{ Project string }{project}); err != nil {
			return err
		}
		rendered[dst] = b.Bytes()
	}
	if err := os.MkdirAll(filepath.Join(o.Path, "data"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Path, "data", "README"), []byte("Small input files for the job go here; they are packed with the project.\n"), 0o644); err != nil {
		return err
	}
	for name, data := range rendered {
		if err := os.WriteFile(filepath.Join(o.Path, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintln(o.F.IO.Out, o.Path)
	fmt.Fprintf(o.F.IO.ErrOut, "created project %s in %s: run it with 'ferry submit --wait -f %s'\n", project, o.Path, o.Path)
	return nil
}
