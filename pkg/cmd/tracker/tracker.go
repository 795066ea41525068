package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/store"
	tr "github.com/ferry-hpc/ferry/pkg/tracker"
)

// Options are tracker's flags.
type Options struct {
	F          *factory.Factory
	Listen     string
	Tick       time.Duration
	Spools     []string
	HookSocket string
	HookUsers  []string
	LostAfter  time.Duration
	Health     bool
}

// NewCmdTracker builds `ferry tracker`.
func NewCmdTracker(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "tracker",
		Short: "Mirror Slurm's view of ferry's jobs into Redis (head-node daemon; admins only)",
		Long: `Run the tracker, the only writer of job state into Redis (redis.addr and
redis.password_file in the config). Every tick (tracker.tick, 1s) it takes
one squeue listing of all jobs, combines it with each job dir's result.json
by the same rules as 'ferry status', and writes only what changed, in one
round trip. Slurm's jobcomp hook ('ferry slurm-hook') tells it at once when
a job ends. It runs as root: it reads every user's job dirs.

When Slurm does not answer, no job changes state and /healthz says so.
When Redis was flushed or restarted, the tracker rebuilds it within a tick.
A restarted tracker reconciles with Slurm and the spools before it writes,
and repeats no event.

It serves /healthz (JSON; 503 when Slurm or Redis is unreachable) and
/metrics (Prometheus) on tracker.listen. --health asks a running tracker
and exits 0 when it is healthy.

` + factory.ExitCodesHelp,
		Example: "  ferry tracker\n  ferry tracker --health",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Listen, "listen", "", "host:port of /healthz and /metrics (default: tracker.listen)")
	fl.DurationVar(&o.Tick, "tick", 0, "how often to ask Slurm (default: tracker.tick)")
	fl.StringSliceVar(&o.Spools, "spools", []string{"/home/*/.ferry/jobs"}, "glob patterns of the spool roots to scan")
	fl.StringVar(&o.HookSocket, "hook-socket", tr.DefaultHookSocket, "unix socket where 'ferry slurm-hook' sends job events")
	fl.StringSliceVar(&o.HookUsers, "hook-users", []string{"root", "slurm"}, "users allowed to send job events (Slurm's SlurmUser)")
	fl.DurationVar(&o.LostAfter, "lost-after", 0, "how long a job may be missing from Slurm without a result before it is lost (default 1m)")
	fl.BoolVar(&o.Health, "health", false, "ask a running tracker for its health instead of starting one")
	return cmd
}

func run(ctx context.Context, o *Options) error {
	cfg, err := o.F.Config()
	if err != nil {
		return err
	}
	listen := o.Listen
	if listen == "" {
		listen = cfg.Tracker.Listen
	}
	if o.Health {
		return health(ctx, o, listen)
	}
	tick := o.Tick
	if tick <= 0 {
		tick = cfg.Tracker.Tick.Duration()
	}
	log := slog.New(slog.NewJSONHandler(o.F.IO.ErrOut, nil))
	if os.Geteuid() != 0 {
		log.Warn("not running as root: job dirs (mode 0700) of other users cannot be read")
	}
	if err := checkPrivate(ctx, cfg.Redis.Addr); err != nil {
		return err
	}
	password := ""
	if cfg.Redis.PasswordFile != "" {
		data, err := os.ReadFile(cfg.Redis.PasswordFile)
		if err != nil {
			return fmt.Errorf("redis password: %w", err)
		}
		password = strings.TrimSpace(string(data))
	}
	st := store.Open(store.Options{Addr: cfg.Redis.Addr, Password: password})
	defer st.Close()

	uids := []int{0}
	for _, name := range o.HookUsers {
		if u, err := user.Lookup(name); err == nil {
			if uid, err := strconv.Atoi(u.Uid); err == nil && !slices.Contains(uids, uid) {
				uids = append(uids, uid)
			}
		}
	}
	metrics := tr.NewMetrics()
	t := tr.New(tr.Options{
		Slurm: o.F.Slurm(), Store: st, Spools: o.Spools, Tick: tick, LostAfter: o.LostAfter,
		Log: log, Metrics: metrics,
	})

	mux := http.NewServeMux()
	mux.Handle("GET /healthz", t.HealthHandler())
	mux.Handle("GET /metrics", metrics.Handler())
	hl, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(hl) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.HookSocket != "" {
		ln, err := tr.ListenHook(o.HookSocket)
		if err != nil {
			return fmt.Errorf("hook socket %s: %w", o.HookSocket, err)
		}
		defer os.Remove(o.HookSocket)
		go func() {
			if err := t.ServeHook(ctx, ln, uids); err != nil {
				log.Error("hook socket", "err", err)
			}
		}()
	}
	log.Info("tracker started", "listen", listen, "redis", cfg.Redis.Addr, "tick", tick.String(),
		"spools", o.Spools, "hook_socket", o.HookSocket, "hook_uids", uids)
	err = t.Run(ctx)
	log.Info("tracker stopped")
	return err
}

// checkPrivate refuses a Redis address that is not on loopback or a
// private network: the job store holds every user's job names and params.
func checkPrivate(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return factory.Usagef("redis.addr %q: want host:port", addr)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = append(ips, ip)
	} else {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		found, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
		if err != nil {
			return fmt.Errorf("redis.addr %q: %w", addr, err)
		}
		ips = found
	}
	for _, ip := range ips {
		if ip = ip.Unmap(); !ip.IsLoopback() && !ip.IsPrivate() {
			return factory.Usagef("redis.addr %s is %s, a public address: Redis must listen on loopback or a private network", addr, ip)
		}
	}
	return nil
}

func health(ctx context.Context, o *Options, listen string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return factory.Usagef("--listen %q: want host:port", listen)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no tracker answers on %s: %w", listen, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	var h tr.Health
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("tracker on %s: %w", listen, err)
	}
	fmt.Fprintf(o.F.IO.Out, "ok=%v reconciled=%v slurm=%s redis=%s jobs=%d\n", h.OK, h.Reconciled, h.Slurm.Status, h.Redis.Status, h.Jobs)
	for _, c := range []struct {
		name string
		c    tr.Component
	}{{"slurm", h.Slurm}, {"redis", h.Redis}} {
		if c.c.Error != "" {
			fmt.Fprintf(o.F.IO.ErrOut, "%s: %s (since %s)\n", c.name, c.c.Error, c.c.Since.Format(time.RFC3339))
		}
	}
	if !h.OK {
		return &factory.ExitError{Code: 1, Silent: true, Err: errors.New("tracker unhealthy")}
	}
	return nil
}
