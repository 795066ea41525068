// Package dashboard is `ferryd dashboard`: the web dashboard's server.
package dashboard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/auth"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/config"
	dash "github.com/ferry-hpc/ferry/pkg/dashboard"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// Options are dashboard's flags.
type Options struct {
	F      *factory.Factory
	Listen string
}

// NewCmdDashboard builds `ferryd dashboard`.
func NewCmdDashboard(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard (head-node daemon; admins only)",
		Long: `Serve ferry's web dashboard on dashboard.listen: every user's jobs, their
live logs, metrics, outputs and sweeps, the nodes, and a course view for
admins; and the same data as JSON under /api/v1.

It reads only Redis (the tracker's store) and the job dirs, never Slurm,
so pages cost the same with many jobs. It runs as root: it reads every
user's job dirs (mode 0700) and their ~/.ferry/token files, and it cancels
a job with 'scancel --user=OWNER' after checking that the caller owns it.

Users log in with the link 'ferry login' prints (their home token), or by
single sign-on when dashboard.oidc.issuer is set. dashboard.admins and
dashboard.admin_group name those who see every job (TAs, teachers). Serve
TLS (dashboard.tls_cert, dashboard.tls_key) or keep it behind a proxy that
does: live pages hold an event stream each, and HTTP/1.1 browsers allow
only six connections per host.

` + factory.ExitCodesHelp,
		Example: "  ferryd dashboard\n  ferryd dashboard --listen 0.0.0.0:8090",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Listen, "listen", "", "host:port to serve on (default: dashboard.listen)")
	return cmd
}

func readSecret(path, what string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// hosts is the Host allowlist: the configured one, else the URL's host,
// localhost and the listen address.
func hosts(cfg *config.Dashboard, listen string) []string {
	if len(cfg.Hosts) > 0 {
		return cfg.Hosts
	}
	h, _, _ := net.SplitHostPort(listen)
	everywhere := h == "" || h == "0.0.0.0" || h == "::"
	if everywhere && cfg.URL == "" {
		return nil // listening everywhere with no URL: any name may be in use
	}
	out := []string{"localhost", "127.0.0.1", "::1"}
	if !everywhere {
		out = append(out, h)
	}
	if u, err := url.Parse(cfg.URL); err == nil && u.Hostname() != "" {
		out = append(out, strings.ToLower(u.Hostname()))
	}
	return out
}

func run(ctx context.Context, o *Options) error {
	cfg, err := o.F.Config()
	if err != nil {
		return err
	}
	d := cfg.Dashboard
	listen := o.Listen
	if listen == "" {
		listen = d.Listen
	}
	log := slog.New(slog.NewJSONHandler(o.F.IO.ErrOut, nil))
	if os.Geteuid() != 0 {
		log.Warn("not running as root: other users' job dirs and token files cannot be read, so they cannot log in")
	}
	password, err := readSecret(cfg.Redis.PasswordFile, "redis password")
	if err != nil {
		return err
	}
	st := store.Open(store.Options{Addr: cfg.Redis.Addr, Password: password})
	defer st.Close()

	secure := d.TLSCert != "" || strings.HasPrefix(d.URL, "https://")
	opts := dash.Options{
		Store: st, Sessions: &auth.Sessions{Store: st, TTL: d.SessionTTL.Duration(), Secure: secure},
		Tokens: &auth.Tokens{}, Cancel: o.F.Slurm(), Admins: d.Admins, AdminGroup: d.AdminGroup,
		Hosts: hosts(&d, listen), Cluster: cfg.Cluster, Log: log, OIDCName: d.OIDC.Name,
	}
	if d.OIDC.Issuer != "" {
		secret, err := readSecret(d.OIDC.ClientSecretFile, "dashboard.oidc.client_secret_file")
		if err != nil {
			return err
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		opts.OIDC, err = auth.NewOIDC(octx, auth.OIDCConfig{
			Issuer: d.OIDC.Issuer, ClientID: d.OIDC.ClientID, ClientSecret: secret,
			RedirectURL: strings.TrimRight(d.URL, "/") + "/auth/callback",
			UserClaim:   d.OIDC.UserClaim, GroupsClaim: d.OIDC.GroupsClaim, AdminGroup: d.OIDC.AdminGroup, Secure: secure,
		})
		cancel()
		if err != nil {
			return err
		}
	}
	srv, err := dash.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go srv.Run(ctx)
	scheme := "http"
	if d.TLSCert != "" {
		scheme = "https"
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	shown := d.URL
	if shown == "" {
		shown = scheme + "://" + ln.Addr().String()
	}
	log.Info("dashboard serving", "url", shown, "listen", ln.Addr().String(), "redis", cfg.Redis.Addr,
		"oidc", d.OIDC.Issuer != "", "admins", d.Admins, "admin_group", d.AdminGroup)
	fmt.Fprintf(o.F.IO.ErrOut, "ferry dashboard on %s (users: run 'ferry login' for a link)\n", shown)
	errc := make(chan error, 1)
	go func() {
		if d.TLSCert != "" {
			errc <- hs.ServeTLS(ln, d.TLSCert, d.TLSKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("dashboard: %w", err)
		}
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	_ = hs.Shutdown(sctx) // event streams end with their requests' contexts
	log.Info("dashboard stopped")
	return nil
}
