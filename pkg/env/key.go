package env

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// KeyVersion starts the canonical encoding Key hashes. Bump it whenever the
// generated build (Dockerfile, scripts, pip or apt flags) changes what an
// environment contains, so that old images are not reused.
const KeyVersion = "ferry-env-v1"

// Sources are the admin's package sources: the only places a build fetches
// from.
type Sources struct {
	// DebianMirror replaces the base image's apt sources ("" keeps them),
	// e.g. http://deb.debian.org/debian. The suite is the base image's.
	DebianMirror string `json:"debian_mirror,omitempty"`
	// PipIndexURL is a PEP 503 simple index (pip --index-url); "" = none.
	PipIndexURL string `json:"pip_index_url,omitempty"`
	// PipFindLinks is a wheelhouse dir on the node (pip --find-links);
	// "" = none. Its files are copied into the build.
	PipFindLinks string `json:"pip_find_links,omitempty"`
	// PipAllowSdist lets pip build source distributions, which runs the
	// packages' build code as root during the build. Off: wheels only.
	PipAllowSdist bool `json:"pip_allow_sdist,omitempty"`
	// WheelhouseDigest is HashWheelhouse(PipFindLinks): Key hashes the
	// wheelhouse's content through it, not the dir's path. The Builder
	// fills it in; callers of Key must too.
	WheelhouseDigest string `json:"-"`
}

// Validate checks the sources are usable and carry no credentials (they are
// recorded in the built image).
func (s Sources) Validate() error {
	var errs []error
	if s.DebianMirror != "" {
		if err := checkSourceURL(s.DebianMirror); err != nil {
			errs = append(errs, fmt.Errorf("debian mirror: %w", err))
		}
	}
	if s.PipIndexURL != "" {
		if err := checkSourceURL(s.PipIndexURL); err != nil {
			errs = append(errs, fmt.Errorf("pip_index_url: %w", err))
		}
	}
	if s.PipFindLinks != "" && !filepath.IsAbs(s.PipFindLinks) {
		errs = append(errs, fmt.Errorf("pip_find_links %q: must be an absolute path to a wheelhouse dir", s.PipFindLinks))
	}
	return errors.Join(errs...)
}

func (s Sources) hasPip() bool { return s.PipIndexURL != "" || s.PipFindLinks != "" }

func checkSourceURL(raw string) error {
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' }) {
		return fmt.Errorf("%q: spaces, quotes and control characters are not allowed", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: must be an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q: must not contain credentials (they would be recorded in every environment image)", u.Redacted())
	}
	return nil
}

// Key is the environment's identity: the sha256 (hex) of a versioned,
// canonical encoding of the base image's ID, the spec (sorted, so the order
// the user wrote does not matter) and the package sources it uses (the pip
// sources only when it has pip requirements), with the wheelhouse counted
// by its content (sources.WheelhouseDigest), not its path.
func Key(baseImageID string, spec Spec, sources Sources) string {
	h := sha256.New()
	io.WriteString(h, KeyVersion+"\n")
	field := func(name, value string) {
		fmt.Fprintf(h, "%s %d:%s\n", name, len(value), value)
	}
	apt, pip := sortedUnique(spec.Apt), sortedUnique(spec.Pip)
	if len(pip) == 0 {
		// The pip sources are not used: a changed wheelhouse does not
		// rebuild apt-only environments.
		sources = Sources{DebianMirror: sources.DebianMirror}
	}
	field("base", baseImageID)
	field("debian-mirror", sources.DebianMirror)
	field("pip-index-url", sources.PipIndexURL)
	wheelhouse := ""
	if sources.PipFindLinks != "" {
		wheelhouse = "content " + sources.WheelhouseDigest
	}
	field("pip-find-links", wheelhouse)
	field("pip-allow-sdist", fmt.Sprint(sources.PipAllowSdist))
	field("apt", fmt.Sprint(len(apt)))
	for _, a := range apt {
		field("apt-package", a)
	}
	field("pip", fmt.Sprint(len(pip)))
	for _, p := range pip {
		field("pip-requirement", p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Short is the key as logs show it.
func Short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}

// ImageName is the tag of the environment with this key.
func ImageName(key string) string { return "ferry/env:" + key }

// wheelFile is one file of a wheelhouse as hashed.
type wheelFile struct {
	Name   string
	Path   string // resolved path on the node
	Size   int64
	SHA256 string
}

// HashWheelhouse hashes a wheelhouse dir: the name, size and sha256 of each
// regular file at its top level (pip --find-links reads no deeper; dot
// files are ignored), so adding, removing or changing a wheel changes it.
func HashWheelhouse(dir string) (string, error) {
	files, err := readWheelhouse(dir, nil)
	if err != nil {
		return "", err
	}
	return wheelhouseDigest(files), nil
}

func wheelhouseDigest(files []wheelFile) string {
	h := sha256.New()
	io.WriteString(h, "wheelhouse-v1\n")
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s %d %s\n", len(f.Name), f.Name, f.Size, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// readWheelhouse lists and hashes dir's files, reusing c's hashes of files
// whose size, mtime and inode did not change.
func readWheelhouse(dir string, c *hashCache) ([]wheelFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read wheelhouse: %w", err)
	}
	var files []wheelFile
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p) // follows symlinks: the admin's dir
		if err != nil {
			return nil, fmt.Errorf("read wheelhouse: %w", err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		sum, err := c.sum(p, fi)
		if err != nil {
			return nil, fmt.Errorf("read wheelhouse: %w", err)
		}
		files = append(files, wheelFile{Name: e.Name(), Path: p, Size: fi.Size(), SHA256: sum})
	}
	slices.SortFunc(files, func(a, b wheelFile) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// hashCache remembers file hashes by path, size, mtime and inode, so a big
// wheelhouse is read once, not on every job. A nil cache hashes every time.
type hashCache struct {
	mu sync.Mutex
	m  map[string]cachedSum
}

type cachedSum struct {
	stamp string
	sum   string
}

func (c *hashCache) sum(path string, fi os.FileInfo) (string, error) {
	stamp := fileStamp(fi)
	if c != nil {
		c.mu.Lock()
		got, ok := c.m[path]
		c.mu.Unlock()
		if ok && got.stamp == stamp {
			return got.sum, nil
		}
	}
	sum, err := sha256File(path)
	if err != nil {
		return "", err
	}
	if c != nil {
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]cachedSum{}
		}
		c.m[path] = cachedSum{stamp: stamp, sum: sum}
		c.mu.Unlock()
	}
	return sum, nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashingReader hashes what it reads.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}
