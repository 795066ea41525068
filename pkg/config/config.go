package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferry-hpc/ferry/pkg/env"
)

// Well-known paths and values.
const (
	// SystemPath is the admin's config file, unless $FERRY_CONFIG names another.
	SystemPath = "/etc/ferry/config.yaml"
	// UserPath is the user's config file, relative to the home dir.
	UserPath = ".ferry/config.yaml"
	// DefaultImage is the sandbox image used when neither the config nor the
	// job names one.
	DefaultImage = "ferry/sandbox:latest"
)

// Config is the cluster and user configuration. Build it with Load (or
// LoadFrom), apply flags, then call Validate. Reference documents every field.
type Config struct {
	Cluster        string       `yaml:"cluster"`
	SpoolRoot      string       `yaml:"spool_root"`
	DefaultImage   string       `yaml:"default_image"`
	Images         []string     `yaml:"images"`
	MaxBundle      Size         `yaml:"max_bundle"`
	ScratchDir     string       `yaml:"scratch_dir"`
	AgentSocket    string       `yaml:"agent_socket"`
	Networks       []string     `yaml:"networks"`
	ReadOnlyMounts []string     `yaml:"readonly_mounts"`
	Perfmon        bool         `yaml:"perfmon"`
	PidsLimit      int64        `yaml:"pids_limit"`
	NodeMemReserve Size         `yaml:"node_mem_reserve"`
	StopGrace      Duration     `yaml:"stop_grace"`
	FerryBinary    string       `yaml:"ferry_binary"`
	Defaults       JobDefaults  `yaml:"defaults"`
	Redis          Redis        `yaml:"redis"`
	Tracker        Tracker      `yaml:"tracker"`
	Dashboard      Dashboard    `yaml:"dashboard"`
	Environments   Environments `yaml:"environments"`

	sources    []string // files read, in order
	bundleCap  Size     // the admin's max_bundle; 0 = none known
	capSource  string   // where bundleCap was set, for messages
	systemName string   // the system file as shown in messages
}

// JobDefaults are the resources of a job that asks for none.
type JobDefaults struct {
	CPUs      int    `yaml:"cpus"`
	Mem       string `yaml:"mem"`  // Slurm notation; "" = the partition's default
	Time      string `yaml:"time"` // Slurm notation or a duration; "" = the partition's default
	Partition string `yaml:"partition"`
}

// Redis is where the tracker, the dashboard and the CLI find the job store.
type Redis struct {
	Addr         string `yaml:"addr"`
	PasswordFile string `yaml:"password_file"`
}

// Tracker configures the Slurm-to-Redis tracker.
type Tracker struct {
	Listen string   `yaml:"listen"` // metrics and health endpoint
	Tick   Duration `yaml:"tick"`   // how often squeue is asked
}

// Dashboard configures the web dashboard (ferryd dashboard) and the link
// `ferry login` prints.
type Dashboard struct {
	Listen     string   `yaml:"listen"`
	URL        string   `yaml:"url"`   // how users reach it; "" = http://<listen>
	Hosts      []string `yaml:"hosts"` // Host headers accepted; [] = the URL's and the listen address's
	Admins     []string `yaml:"admins"`
	AdminGroup string   `yaml:"admin_group"`
	SessionTTL Duration `yaml:"session_ttl"`
	TLSCert    string   `yaml:"tls_cert"`
	TLSKey     string   `yaml:"tls_key"`
	OIDC       OIDC     `yaml:"oidc"`
}

// Environments configures the images the agents build for jobs that ask
// for Python requirements or Debian packages (package env).
type Environments struct {
	Enabled      bool     `yaml:"enabled"`
	StateDir     string   `yaml:"state_dir"`
	DebianMirror string   `yaml:"debian_mirror"`  // "" = the base image's
	PipIndexURL  string   `yaml:"pip_index_url"`  // "" = none
	PipFindLinks string   `yaml:"pip_find_links"` // a wheelhouse dir on the workers; "" = none
	BuildNetwork string   `yaml:"build_network"`  // "" = confined to the sources by ferry's egress proxy
	FailureTTL   Duration `yaml:"failure_ttl"`
	MaxAge       Duration `yaml:"max_age"`  // evict environments unused this long; 0 = never
	MaxSize      Size     `yaml:"max_size"` // evict the least recently used beyond this; 0 = no cap
}

// Options are the environment builder's options from this section.
func (e Environments) Options() env.Options {
	return env.Options{
		StateDir:     e.StateDir,
		FailureTTL:   e.FailureTTL.Duration(),
		Sources:      env.Sources{DebianMirror: e.DebianMirror, PipIndexURL: e.PipIndexURL, PipFindLinks: e.PipFindLinks},
		BuildNetwork: e.BuildNetwork,
	}
}

// OIDC is the dashboard's single sign-on through an OpenID provider.
type OIDC struct {
	Issuer           string `yaml:"issuer"` // "" = off
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	UserClaim        string `yaml:"user_claim"`
	GroupsClaim      string `yaml:"groups_claim"`
	AdminGroup       string `yaml:"admin_group"`
	Name             string `yaml:"name"`
}

// Default returns the built-in defaults, before any file or variable.
func Default() *Config {
	return &Config{
		Cluster:        "ferry",
		SpoolRoot:      "~/.ferry/jobs",
		DefaultImage:   DefaultImage,
		Images:         []string{DefaultImage},
		MaxBundle:      256 << 20,
		ScratchDir:     "/var/tmp/ferry",
		AgentSocket:    "/run/ferry/agent.sock",
		PidsLimit:      512,
		NodeMemReserve: 512 << 20,
		StopGrace:      Duration(5 * time.Second),
		Defaults:       JobDefaults{CPUs: 1, Mem: "1G", Time: "1h"},
		Redis:          Redis{Addr: "127.0.0.1:6379"},
		Tracker:        Tracker{Listen: "127.0.0.1:9465", Tick: Duration(time.Second)},
		Dashboard: Dashboard{Listen: "127.0.0.1:8090", SessionTTL: Duration(12 * time.Hour),
			OIDC: OIDC{UserClaim: "preferred_username", GroupsClaim: "groups"}},
		Environments: Environments{StateDir: "/var/lib/ferry/env", FailureTTL: Duration(5 * time.Minute),
			MaxAge: Duration(30 * 24 * time.Hour), MaxSize: 20 << 30},
		systemName: SystemPath,
	}
}

// Layers says where LoadFrom finds each layer. Load fills it from the
// process; tests fill it by hand.
type Layers struct {
	// System is the admin's file; "" = none. A missing file is skipped
	// unless SystemRequired is set (Load sets it when $FERRY_CONFIG names
	// the file: a typo there should not go unnoticed).
	System         string
	SystemRequired bool
	// User is the user's file; "" = none. A missing file is skipped.
	User string
	// Env holds "KEY=value" pairs as os.Environ returns them; only FERRY_*
	// variables are read, a later pair wins over an earlier one, and an
	// empty value counts as unset.
	Env []string
	// Home is the user's home dir: "~" in spool_root expands to it, and
	// files under it are shown as ~/... in messages.
	Home string
	// Root is true when running as uid 0: admin-only variables are then
	// honoured, and may raise max_bundle.
	Root bool
}

// Load reads the real layers: the defaults, $FERRY_CONFIG or
// /etc/ferry/config.yaml, ~/.ferry/config.yaml and the FERRY_* environment.
// It does not call Validate: apply flags first, then validate.
func Load() (*Config, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		// No $HOME (Slurm's Epilog, daemons started by init): the passwd
		// database still knows.
		if u, uerr := user.Current(); uerr == nil {
			home = u.HomeDir
		}
	}
	return LoadFrom(processLayers(os.Environ(), home, os.Geteuid() == 0))
}

// processLayers is the part of Load that decides the paths.
func processLayers(environ []string, home string, root bool) Layers {
	l := Layers{System: SystemPath, Env: environ, Home: home, Root: root}
	if p := envMap(environ)["FERRY_CONFIG"]; p != "" {
		l.System, l.SystemRequired = p, true
	}
	if home != "" {
		l.User = filepath.Join(home, UserPath)
	}
	return l
}

// LoadFrom applies the layers in l over the defaults. Like Load, it does not
// call Validate.
func LoadFrom(l Layers) (*Config, error) {
	c := Default()
	if l.System != "" {
		c.systemName = displayPath(l.System, l.Home)
		data, err := os.ReadFile(l.System)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !l.SystemRequired:
		case err != nil:
			if l.SystemRequired {
				return nil, fmt.Errorf("read config named by FERRY_CONFIG: %w", err)
			}
			return nil, fmt.Errorf("read config: %w", err)
		default:
			root, err := decodeFile(c.systemName, data, c, false)
			if err != nil {
				return nil, err
			}
			c.sources = append(c.sources, l.System)
			// The allowlist follows the admin's default image unless the
			// admin wrote one.
			if root != nil && mapValue(root, "images") == nil {
				c.Images = []string{c.DefaultImage}
			}
		}
	}
	c.bundleCap, c.capSource = c.MaxBundle, c.systemName

	if l.User != "" {
		data, err := os.ReadFile(l.User)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("read config: %w", err)
		default:
			if err := c.applyUserFile(displayPath(l.User, l.Home), data); err != nil {
				return nil, err
			}
			c.sources = append(c.sources, l.User)
		}
	}

	if err := c.applyEnv(envMap(l.Env), l.Root); err != nil {
		return nil, err
	}
	c.SpoolRoot = expandHome(c.SpoolRoot, l.Home)
	return c, nil
}

// applyUserFile decodes the user's file over c, refusing admin-only fields.
func (c *Config) applyUserFile(name string, data []byte) error {
	before := *c
	root, err := parseDoc(name, data)
	if err != nil || root == nil {
		return err
	}
	var errs []error
	walkKeys(root, "", func(path string, key *yaml.Node) {
		if f := fieldByKey(path); f == nil || !f.access.fileAdmin() {
			return
		}
		errs = append(errs, fmt.Errorf("%s line %d: field %s may only be set in %s", name, key.Line, path, c.systemName))
	})
	if _, err := decodeFile(name, data, c, false); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Merge keys (<<) can set a field without naming it: compare values too.
	for i := range fields {
		f := &fields[i]
		if f.key == "" || !f.access.fileAdmin() {
			continue
		}
		if !reflect.DeepEqual(f.value(&before), f.value(c)) {
			errs = append(errs, fmt.Errorf("%s: field %s may only be set in %s", name, f.key, c.systemName))
		}
	}
	return errors.Join(errs...)
}

// Sources returns the files that were read, in the order they were applied.
func (c *Config) Sources() []string { return slices.Clone(c.sources) }

// AgentSocketFor returns the agent's socket path on node: "%n" in
// agent_socket is replaced by the node name, with any '/' in the name
// replaced by '_' so it cannot leave the socket's directory.
func (c *Config) AgentSocketFor(node string) string {
	node = strings.ReplaceAll(node, "/", "_")
	if node == "." || node == ".." {
		node = "_"
	}
	return strings.ReplaceAll(c.AgentSocket, "%n", node)
}

// displayPath shows files under home as ~/...
func displayPath(path, home string) string {
	if home != "" && home != "/" {
		if rel, ok := strings.CutPrefix(path, strings.TrimSuffix(home, "/")+"/"); ok {
			return "~/" + rel
		}
	}
	return path
}

// expandHome expands a leading "~" or "~/" to home; other forms (~user) are
// left alone, and so is everything when home is unknown.
func expandHome(p, home string) string {
	if home == "" {
		return p
	}
	if p == "~" {
		return home
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(home, rest)
	}
	return p
}

// envMap keeps the FERRY_* pairs of environ; a later pair wins.
func envMap(environ []string) map[string]string {
	m := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "FERRY_") {
			m[k] = v
		}
	}
	return m
}
