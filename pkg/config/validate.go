package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/lazyre"
)

var clusterName = lazyre.New(`^[a-z][a-z0-9-]{0,30}$`)

// Validate reports every problem in c at once (errors.Join), one line each.
// Call it after flags are applied.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !clusterName.MatchString(c.Cluster) {
		bad("cluster %q must be 1-31 lowercase letters, digits or '-', starting with a letter", c.Cluster)
	}
	if !filepath.IsAbs(c.SpoolRoot) {
		bad("spool_root %q must be an absolute path (is HOME set?)", c.SpoolRoot)
	}
	if len(c.Images) == 0 {
		bad("images is empty: no job could run; list at least the default image")
	}
	for i, img := range c.Images {
		if strings.TrimSpace(img) == "" || strings.ContainsAny(img, " \t\n") {
			bad("images[%d] %q is not an image name", i, img)
		}
	}
	if c.DefaultImage == "" {
		bad("default_image is empty")
	} else if err := c.ImageAllowed(c.DefaultImage); err != nil {
		bad("default_image: %v", err)
	}
	switch {
	case c.MaxBundle <= 0:
		bad("max_bundle must be more than zero, got %d", int64(c.MaxBundle))
	case c.MaxBundle < 1<<20:
		bad("max_bundle is %s; write the unit for megabytes, such as 256M", c.MaxBundle)
	case c.bundleCap > 0 && c.MaxBundle > c.bundleCap:
		bad("max_bundle %s is above the cluster's cap of %s (set in %s); it may only be lowered", c.MaxBundle, c.bundleCap, c.capSource)
	}
	if !filepath.IsAbs(c.ScratchDir) {
		bad("scratch_dir %q must be an absolute path", c.ScratchDir)
	}
	if !filepath.IsAbs(c.AgentSocket) {
		bad("agent_socket %q must be an absolute path", c.AgentSocket)
	}
	for i, n := range c.Networks {
		switch {
		case n == "host":
			bad("networks: host would give sandboxes the node's own network; it is not allowed")
		case n == "" || strings.ContainsAny(n, ": \t\n/"):
			bad("networks[%d] %q is not a Docker network name", i, n)
		}
	}
	for i, m := range c.ReadOnlyMounts {
		switch {
		case !filepath.IsAbs(m) || filepath.Clean(m) != m:
			bad("readonly_mounts[%d] %q must be a clean absolute path", i, m)
		case m == "/":
			bad("readonly_mounts: / would expose the whole node; mount the dirs jobs need")
		case strings.ContainsAny(m, ":,\n"):
			bad("readonly_mounts[%d] %q may not contain ':', ',' or a newline", i, m)
		}
	}
	if c.PidsLimit <= 0 {
		bad("pids_limit must be more than zero, got %d", c.PidsLimit)
	}
	if c.NodeMemReserve < 0 {
		bad("node_mem_reserve must not be negative, got %d", int64(c.NodeMemReserve))
	}
	if c.StopGrace < 0 {
		bad("stop_grace must not be negative, got %s", c.StopGrace)
	}
	if c.FerryBinary != "" && !filepath.IsAbs(c.FerryBinary) {
		bad("ferry_binary %q must be an absolute path", c.FerryBinary)
	}
	if c.Defaults.CPUs < 1 {
		bad("defaults.cpus must be at least 1, got %d", c.Defaults.CPUs)
	}
	if c.Defaults.Mem != "" {
		if _, err := job.ParseMem(c.Defaults.Mem); err != nil {
			bad("defaults.mem: %v", err)
		}
	}
	if c.Defaults.Time != "" {
		if _, err := job.ParseTime(c.Defaults.Time); err != nil {
			bad("defaults.time: %v", err)
		}
	}
	if strings.ContainsAny(c.Defaults.Partition, " \t\n") {
		bad("defaults.partition %q may not contain spaces", c.Defaults.Partition)
	}
	if _, _, err := net.SplitHostPort(c.Redis.Addr); err != nil {
		bad("redis.addr %q: want host:port", c.Redis.Addr)
	}
	if c.Redis.PasswordFile != "" && !filepath.IsAbs(c.Redis.PasswordFile) {
		bad("redis.password_file %q must be an absolute path", c.Redis.PasswordFile)
	}
	if _, _, err := net.SplitHostPort(c.Tracker.Listen); err != nil {
		bad("tracker.listen %q: want host:port", c.Tracker.Listen)
	}
	c.validateDashboard(bad)
	if c.Tracker.Tick <= 0 {
		bad("tracker.tick must be more than zero, got %s", c.Tracker.Tick)
	}
	return errors.Join(errs...)
}

// ImageAllowed returns nil when image is on the allowlist, or a one-line
// error listing the allowed images. Names are compared exactly, as the agent
// does: "debian" and "debian:latest" are different names.
func (c *Config) ImageAllowed(image string) error {
	if slices.Contains(c.Images, image) {
		return nil
	}
	hint := ""
	if !strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") && slices.Contains(c.Images, image+":latest") {
		hint = fmt.Sprintf(" (did you mean %s:latest?)", image)
	}
	allowed := "none"
	if len(c.Images) > 0 {
		allowed = strings.Join(c.Images, ", ")
	}
	return fmt.Errorf("image %q is not allowed on this cluster%s; allowed images: %s", image, hint, allowed)
}

func (c *Config) validateDashboard(bad func(string, ...any)) {
	d := &c.Dashboard
	if _, _, err := net.SplitHostPort(d.Listen); err != nil {
		bad("dashboard.listen %q: want host:port", d.Listen)
	}
	if d.URL != "" {
		u, err := url.Parse(d.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("dashboard.url %q: want http://host[:port] or https://host[:port]", d.URL)
		}
	}
	if d.SessionTTL < Duration(time.Minute) {
		bad("dashboard.session_ttl must be at least 1m, got %s", d.SessionTTL)
	}
	if (d.TLSCert == "") != (d.TLSKey == "") {
		bad("dashboard.tls_cert and dashboard.tls_key go together: set both or neither")
	}
	for _, p := range []struct{ key, path string }{{"dashboard.tls_cert", d.TLSCert}, {"dashboard.tls_key", d.TLSKey}, {"dashboard.oidc.client_secret_file", d.OIDC.ClientSecretFile}} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			bad("%s %q must be an absolute path", p.key, p.path)
		}
	}
	if o := d.OIDC; o.Issuer != "" {
		if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("dashboard.oidc.issuer %q: want the provider's https URL", o.Issuer)
		}
		if o.ClientID == "" {
			bad("dashboard.oidc.client_id is empty: set the client id the provider gave the dashboard")
		}
		if d.URL == "" {
			bad("dashboard.oidc.issuer is set but dashboard.url is not: the provider must know where to send users back")
		}
		if o.UserClaim == "" {
			bad("dashboard.oidc.user_claim is empty: name the claim that holds the Unix user name")
		}
	}
}
