package config

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
)

// access says who may set a field.
type access int

const (
	anyone       access = iota // any layer
	admin                      // the system file; its variable only as root
	adminCeiling               // the system file sets a cap; users may lower it
	adminFile                  // the system file; its variable by anyone
)

// fileAdmin reports whether the user file must not set the field.
func (a access) fileAdmin() bool { return a == admin || a == adminFile }

// envAdmin reports whether the field's variable is honoured only for root.
func (a access) envAdmin() bool { return a == admin }

func (a access) String() string {
	switch a {
	case admin:
		return "admin"
	case adminCeiling:
		return "admin; users may lower it"
	case adminFile:
		return "admin (variable: anyone)"
	}
	return "anyone"
}

// field describes one setting. The table below drives the environment
// overrides, the admin-only checks and Reference.
type field struct {
	key     string // yaml path, dotted; "" for FERRY_CONFIG, which is no field
	env     string
	access  access
	def     string // the default as Reference shows it; "" = from Default()
	meaning string
	ptr     func(*Config) any // a pointer to the field
}

var fields = []field{
	{key: "cluster", access: admin,
		meaning: "The cluster's name, put on every sandbox container (label ferry.cluster): a worker's agent and epilog touch only their own cluster's containers, so two clusters can share one Docker Engine.",
		ptr:     func(c *Config) any { return &c.Cluster }},
	{key: "spool_root", env: "FERRY_SPOOL_ROOT", access: anyone,
		meaning: "Where job dirs are created; must be on the shared /home so workers see it. A leading ~ is the user's home.",
		ptr:     func(c *Config) any { return &c.SpoolRoot }},
	{key: "default_image", env: "FERRY_DEFAULT_IMAGE", access: anyone,
		meaning: "Sandbox image for jobs whose job.yaml names none; must be on the images allowlist.",
		ptr:     func(c *Config) any { return &c.DefaultImage }},
	{key: "images", access: admin, def: "[default_image]",
		meaning: "Images a job may run in (exact names, tag included). Without it, only the system file's default_image.",
		ptr:     func(c *Config) any { return &c.Images }},
	{key: "max_bundle", env: "FERRY_MAX_BUNDLE", access: adminCeiling,
		meaning: "Largest project bundle a job may upload. \"256M\", \"1G\"; a YAML integer is bytes, a bare number in a string is megabytes.",
		ptr:     func(c *Config) any { return &c.MaxBundle }},
	{key: "scratch_dir", env: "FERRY_SCRATCH_DIR", access: admin,
		meaning: "Node-local dir on the workers where bundles are unpacked.",
		ptr:     func(c *Config) any { return &c.ScratchDir }},
	{key: "agent_socket", env: "FERRY_AGENT_SOCKET", access: admin,
		meaning: "Unix socket of the agent on each worker; %n is replaced by the Slurm node name.",
		ptr:     func(c *Config) any { return &c.AgentSocket }},
	{key: "networks", access: admin, def: "none",
		meaning: "Docker networks a job may ask for in job.yaml; without one a sandbox has no network. host is refused.",
		ptr:     func(c *Config) any { return &c.Networks }},
	{key: "readonly_mounts", access: admin, def: "none",
		meaning: "Host paths mounted read-only at the same path in every sandbox.",
		ptr:     func(c *Config) any { return &c.ReadOnlyMounts }},
	{key: "perfmon", access: admin,
		meaning: "Give sandboxes CAP_PERFMON (perf, profilers).",
		ptr:     func(c *Config) any { return &c.Perfmon }},
	{key: "pids_limit", access: admin,
		meaning: "Most processes and threads a sandbox may run.",
		ptr:     func(c *Config) any { return &c.PidsLimit }},
	{key: "node_mem_reserve", access: admin,
		meaning: "Memory a sandbox leaves to the worker's own daemons (slurmd, dockerd, the agent): its limit is at most the node's memory less this, and that when Slurm allots the job none.",
		ptr:     func(c *Config) any { return &c.NodeMemReserve }},
	{key: "stop_grace", access: anyone,
		meaning: "Time between SIGTERM and SIGKILL when a sandbox is stopped.",
		ptr:     func(c *Config) any { return &c.StopGrace }},
	{key: "ferry_binary", access: anyone, def: "the running executable",
		meaning: "Path of ferry on the workers, written into each job's sbatch script.",
		ptr:     func(c *Config) any { return &c.FerryBinary }},
	{key: "defaults.cpus", access: anyone,
		meaning: "CPUs of a job that asks for none.",
		ptr:     func(c *Config) any { return &c.Defaults.CPUs }},
	{key: "defaults.mem", access: anyone,
		meaning: "Memory of a job that asks for none, in Slurm's notation; empty = the partition's default.",
		ptr:     func(c *Config) any { return &c.Defaults.Mem }},
	{key: "defaults.time", access: anyone,
		meaning: "Time limit of a job that asks for none (\"1h\", \"30\" minutes, \"1-00:00:00\"); empty = the partition's default.",
		ptr:     func(c *Config) any { return &c.Defaults.Time }},
	{key: "defaults.partition", access: anyone, def: "the cluster's default",
		meaning: "Slurm partition of a job that names none.",
		ptr:     func(c *Config) any { return &c.Defaults.Partition }},
	{key: "redis.addr", env: "FERRY_REDIS_ADDR", access: anyone,
		meaning: "host:port of the Redis job store.",
		ptr:     func(c *Config) any { return &c.Redis.Addr }},
	{key: "redis.password_file", env: "FERRY_REDIS_PASSWORD_FILE", access: adminFile, def: "none",
		meaning: "File holding the Redis password (absolute path); its permissions decide who may read it.",
		ptr:     func(c *Config) any { return &c.Redis.PasswordFile }},
	{key: "tracker.listen", access: anyone,
		meaning: "host:port where the tracker serves its health and metrics endpoints.",
		ptr:     func(c *Config) any { return &c.Tracker.Listen }},
	{key: "tracker.tick", access: anyone,
		meaning: "How often the tracker asks Slurm (one squeue per tick).",
		ptr:     func(c *Config) any { return &c.Tracker.Tick }},
	{key: "dashboard.listen", access: admin,
		meaning: "host:port where `ferryd dashboard` listens. Keep it on loopback or a private network, or serve TLS.",
		ptr:     func(c *Config) any { return &c.Dashboard.Listen }},
	{key: "dashboard.url", env: "FERRY_DASHBOARD_URL", access: anyone, def: "http://<dashboard.listen>",
		meaning: "The dashboard's address as users' browsers reach it: `ferry login` prints a link to it, and single sign-on returns to it.",
		ptr:     func(c *Config) any { return &c.Dashboard.URL }},
	{key: "dashboard.hosts", access: admin, def: "dashboard.url's host, localhost and the listen address",
		meaning: "Host headers the dashboard answers (against DNS rebinding); others get 421.",
		ptr:     func(c *Config) any { return &c.Dashboard.Hosts }},
	{key: "dashboard.admins", access: admin, def: "none",
		meaning: "Unix users who see and cancel every user's jobs and the course view (TAs, teachers).",
		ptr:     func(c *Config) any { return &c.Dashboard.Admins }},
	{key: "dashboard.admin_group", access: admin, def: "none",
		meaning: "A Unix group whose members are dashboard admins.",
		ptr:     func(c *Config) any { return &c.Dashboard.AdminGroup }},
	{key: "dashboard.session_ttl", access: admin, def: "12h",
		meaning: "How long a dashboard login lasts.",
		ptr:     func(c *Config) any { return &c.Dashboard.SessionTTL }},
	{key: "dashboard.tls_cert", access: admin, def: "none (plain HTTP)",
		meaning: "PEM certificate file: the dashboard serves HTTPS (and HTTP/2, so many live pages share one connection), and its cookies are Secure.",
		ptr:     func(c *Config) any { return &c.Dashboard.TLSCert }},
	{key: "dashboard.tls_key", access: admin, def: "none",
		meaning: "PEM key file of tls_cert.",
		ptr:     func(c *Config) any { return &c.Dashboard.TLSKey }},
	{key: "dashboard.oidc.issuer", access: admin, def: "none (home tokens only)",
		meaning: "OpenID provider (Keycloak realm URL, ...) for single sign-on; its redirect URI is <dashboard.url>/auth/callback.",
		ptr:     func(c *Config) any { return &c.Dashboard.OIDC.Issuer }},
	{key: "dashboard.oidc.client_id", access: admin, def: "none",
		meaning: "The dashboard's client id at the provider.",
		ptr:     func(c *Config) any { return &c.Dashboard.OIDC.ClientID }},
	{key: "dashboard.oidc.client_secret_file", access: admin, def: "none (a public client)",
		meaning: "File holding the client secret (absolute path, readable by root only).",
		ptr:     func(c *Config) any { return &c.Dashboard.OIDC.ClientSecretFile }},
	{key: "dashboard.oidc.user_claim", access: admin,
		meaning: "ID-token claim naming the Unix user.",
		ptr:     func(c *Config) any { return &c.Dashboard.OIDC.UserClaim }},
	{key: "dashboard.oidc.groups_claim", access: admin,
		meaning: "ID-token claim listing the user's groups.",
		ptr:     func(c *Config) any { return &c.Dashboard.OIDC.GroupsClaim }},
	{key: "dashboard.oidc.admin_group", access: admin, def: "none",
		meaning: "A provider group whose members are dashboard admins.",
		ptr:     func(c *Config) any { return &c.Dashboard.OIDC.AdminGroup }},
	{key: "dashboard.oidc.name", access: admin, def: "single sign-on",
		meaning: "The provider's name on the login button.",
		ptr:     func(c *Config) any { return &c.Dashboard.OIDC.Name }},
	{key: "environments.enabled", access: admin,
		meaning: "Build environments: a job with requirements.txt or job.yaml's apt: runs in an image built FROM its (allowlisted) image, once per content hash on each worker, by the agent; its sandbox keeps no network. Off: such jobs are refused.",
		ptr:     func(c *Config) any { return &c.Environments.Enabled }},
	{key: "environments.state_dir", access: admin,
		meaning: "The agents' node-local dir for build locks, failure records and last-use times (root only).",
		ptr:     func(c *Config) any { return &c.Environments.StateDir }},
	{key: "environments.debian_mirror", access: admin, def: "the base image's sources",
		meaning: "Debian mirror the builds install apt: packages from. Confined builds (build_network unset) need it for apt: packages; the base image's own sources serve only on a build_network of the admin's.",
		ptr:     func(c *Config) any { return &c.Environments.DebianMirror }},
	{key: "environments.pip_index_url", access: admin, def: "none",
		meaning: "A PEP 503 package index (pip --index-url) the builds may install from. No credentials in it: it is recorded in the images.",
		ptr:     func(c *Config) any { return &c.Environments.PipIndexURL }},
	{key: "environments.pip_find_links", access: admin, def: "none",
		meaning: "A wheelhouse dir on every worker (pip --find-links); its content is part of each environment's key.",
		ptr:     func(c *Config) any { return &c.Environments.PipFindLinks }},
	{key: "environments.build_network", access: admin, def: "confined",
		meaning: "Where builds reach the sources from. Default: a network of the build's own with no route out but ferry's egress proxy, which forwards to debian_mirror and pip_index_url only (no network at all when a build needs none; apt: packages then need debian_mirror). A Docker network's name (not host) instead: the admin confines it.",
		ptr:     func(c *Config) any { return &c.Environments.BuildNetwork }},
	{key: "environments.failure_ttl", access: admin, def: "5m",
		meaning: "How long a failed build is answered from its record (with the build's last lines) instead of being tried again.",
		ptr:     func(c *Config) any { return &c.Environments.FailureTTL }},
	{key: "environments.max_age", access: admin, def: "720h (30 days)",
		meaning: "Environments unused this long are removed (at the agent's start and daily); 0: never by age.",
		ptr:     func(c *Config) any { return &c.Environments.MaxAge }},
	{key: "environments.max_size", access: admin,
		meaning: "The environments' total size on a worker; beyond it the least recently used are removed; 0: no cap.",
		ptr:     func(c *Config) any { return &c.Environments.MaxSize }},
	{env: "FERRY_CONFIG", access: anyone, def: SystemPath,
		meaning: "Not a field: the system file to read instead of /etc/ferry/config.yaml. The user file still applies."},
}

// fieldByKey returns the table entry for a yaml path, or nil.
func fieldByKey(key string) *field {
	for i := range fields {
		if fields[i].key == key && key != "" {
			return &fields[i]
		}
	}
	return nil
}

// value returns the field's current value in c.
func (f *field) value(c *Config) any {
	return reflect.ValueOf(f.ptr(c)).Elem().Interface()
}

// set parses an environment value into the field.
func (f *field) set(c *Config, v string) error {
	switch p := f.ptr(c).(type) {
	case *string:
		*p = v
	case *Size:
		s, err := ParseSize(v)
		if err != nil {
			return err
		}
		*p = s
	case *Duration:
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", v)
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", v)
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p = b
	case *[]string:
		*p = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*p = append(*p, s)
			}
		}
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// applyEnv applies the FERRY_* variables in env, in table order.
func (c *Config) applyEnv(env map[string]string, root bool) error {
	var errs []error
	for i := range fields {
		f := &fields[i]
		v := env[f.env]
		if f.env == "" || f.ptr == nil || v == "" {
			continue
		}
		if f.access.envAdmin() && !root {
			slog.Debug("ignoring admin-only variable: it is honoured only for root", "var", f.env)
			continue
		}
		if err := f.set(c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", f.env, v, err))
			continue
		}
		if f.access == adminCeiling && root && c.MaxBundle > c.bundleCap {
			c.bundleCap, c.capSource = c.MaxBundle, f.env
		}
	}
	return errors.Join(errs...)
}

// Reference returns a markdown table of every setting: its field, variable,
// default, who may set it and what it means. README embeds its output.
func Reference() string {
	def := Default()
	var b strings.Builder
	b.WriteString("| field | env var | default | who may set it | meaning |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for i := range fields {
		f := &fields[i]
		key, env := "—", "—"
		if f.key != "" {
			key = "`" + f.key + "`"
		}
		if f.env != "" {
			env = "`" + f.env + "`"
		}
		d := f.def
		if d == "" {
			d = "`" + formatValue(f.value(def)) + "`"
		} else if !strings.Contains(d, " ") {
			d = "`" + d + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", key, env, d, f.access, strings.ReplaceAll(f.meaning, "|", `\|`))
	}
	return b.String()
}

func formatValue(v any) string {
	switch v := v.(type) {
	case []string:
		if len(v) == 0 {
			return "none"
		}
		return "[" + strings.Join(v, ", ") + "]"
	case string:
		if v == "" {
			return `""`
		}
		return v
	}
	return fmt.Sprint(v)
}
