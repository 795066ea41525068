// Package login is `ferry login`: the home token that logs a user in to
// the dashboard.
package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/atomicfile"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
)

// TokenFile is where the token is kept, relative to the home dir. The
// dashboard reads the same path (auth.TokenFile; a test keeps them equal:
// this binary does not link the dashboard's auth package).
const TokenFile = ".ferry/token"

// Options are login's flags.
type Options struct {
	F      *factory.Factory
	Rotate bool
	Output string
	Home   string // "" = the user's home
	User   string // "" = the current user
}

// NewCmdLogin builds `ferry login`.
func NewCmdLogin(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Print a link that logs you in to the dashboard",
		Long: `Print a link that logs you in to the cluster's web dashboard, where you
see your jobs, their live logs, metrics, outputs and sweeps.

The link carries your token: a random secret kept in ~/.ferry/token, which
only you (and the cluster's root) can read, so having it proves who you
are. The dashboard checks it once and gives your browser a session. The
token stays the same between calls; --rotate makes a new one and ends every
session made with the old one (do it if the link leaked). The token is in
the link's #fragment, which browsers never send to a server log.

The dashboard's address is dashboard.url in the config.

` + output.ExitCodes(),
		Example: "  ferry login\n  ferry login --rotate\n  ferry login -o json     # {\"url\", \"user\", \"token\"} for scripts",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Rotate, "rotate", false, "make a new token; sessions made with the old one end")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json")
	return cmd
}

func run(_ context.Context, o *Options) error {
	if o.Output != "" && o.Output != "json" {
		return factory.Usagef("-o %q: the only format is json", o.Output)
	}
	cfg, err := o.F.Config()
	if err != nil {
		return err
	}
	name, home := o.User, o.Home
	if name == "" || home == "" {
		u, err := user.Current()
		if err != nil {
			return fmt.Errorf("who are you: %w", err)
		}
		name, home = u.Username, u.HomeDir
	}
	token, made, err := ensureToken(home, o.Rotate, o.F.IO.ErrOut)
	if err != nil {
		return err
	}
	base := cfg.Dashboard.URL
	if base == "" {
		host, port, _ := net.SplitHostPort(cfg.Dashboard.Listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	frag := "user=" + url.QueryEscape(name) + "&token=" + url.QueryEscape(token) // the user first: people read it
	link := strings.TrimRight(base, "/") + "/login#" + frag
	if o.Output == "json" {
		enc := json.NewEncoder(o.F.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]string{"url": link, "user": name, "token": token, "dashboard": base})
	}
	switch {
	case made && o.Rotate:
		fmt.Fprintln(o.F.IO.ErrOut, "made a new token in ~/"+TokenFile+"; sessions made with the old one end within a minute")
	case made:
		fmt.Fprintln(o.F.IO.ErrOut, "made your token in ~/"+TokenFile)
	}
	fmt.Fprintln(o.F.IO.ErrOut, "Open this link to log in to the dashboard (it holds your token: keep it to yourself):")
	fmt.Fprintln(o.F.IO.Out, link)
	return nil
}

// ensureToken reads the token file, or makes it (0600, in ~/.ferry 0700)
// when it is missing, unsafe or a rotation is asked for.
func ensureToken(home string, rotate bool, warn io.Writer) (string, bool, error) {
	path := filepath.Join(home, TokenFile)
	if !rotate {
		tok, err := readToken(path)
		switch {
		case err == nil:
			return tok, false, nil
		case errors.Is(err, errUnsafe):
			fmt.Fprintf(warn, "ferry: %v: making a new token\n", err)
		case !errors.Is(err, fs.ErrNotExist):
			return "", false, fmt.Errorf("read %s: %w (run 'ferry login --rotate' to make a new one)", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("make %s: %w", filepath.Dir(path), err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	if err := atomicfile.Write(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	return tok, true, nil
}

var errUnsafe = errors.New("unsafe token file")

func readToken(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return "", fmt.Errorf("%w: %s is a link", errUnsafe, path)
		}
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %v, so others may have read it", errUnsafe, path, fi.Mode())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%w: %s is not yours", errUnsafe, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < 32 {
		return "", fmt.Errorf("%w: %s holds no token", errUnsafe, path)
	}
	return tok, nil
}
