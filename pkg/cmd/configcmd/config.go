// Package configcmd is `ferry config`.
package configcmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/config"
)

// Options are config's flags.
type Options struct {
	F         *factory.Factory
	Reference bool
	Output    output.Format
}

// NewCmdConfig builds `ferry config`.
func NewCmdConfig(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration in effect and where it came from",
		Long: `Show the configuration in effect: the built-in defaults, overridden by
/etc/ferry/config.yaml (or $FERRY_CONFIG), then ~/.ferry/config.yaml, then
FERRY_* environment variables. The files read are listed on stderr.

--reference prints every field, its variable, default and who may set it.

` + factory.ExitCodesHelp,
		Example: "  ferry config\n  ferry config --reference",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Reference, "reference", false, "print the reference of every config field (markdown)")
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func run(_ context.Context, o *Options) error {
	if o.Reference {
		_, err := fmt.Fprint(o.F.IO.Out, config.Reference())
		return err
	}
	cfg, err := o.F.Config()
	if err != nil {
		return err
	}
	for _, s := range cfg.Sources() {
		fmt.Fprintf(o.F.IO.ErrOut, "read %s\n", s)
	}
	if o.Output == output.JSON {
		return output.WriteJSON(o.F.IO.Out, cfg)
	}
	enc := yaml.NewEncoder(o.F.IO.Out)
	enc.SetIndent(2)
	defer enc.Close()
	return enc.Encode(cfg)
}
