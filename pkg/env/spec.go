package env

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Limits on what a user may ask for.
const (
	MaxRequirements   = 500  // requirement lines in one spec
	MaxAptPackages    = 200  // Debian packages in one spec
	maxRequirementLen = 1000 // bytes in one (joined) requirements.txt line
)

// RequirementsFile is how errors name the requirements file.
const RequirementsFile = "requirements.txt"

// Spec is what an environment holds on top of its base image. Build it with
// NewSpec or ParseRequirements: both leave it validated and canonical
// (normalised, deduplicated, sorted).
type Spec struct {
	// Pip are PEP 508 requirements in canonical form, e.g.
	// "requests[socks]<3,>=2.31; python_version >= \"3.8\"".
	Pip []string `json:"pip,omitempty"`
	// Apt are Debian package names, optionally "=version".
	Apt []string `json:"apt,omitempty"`
}

// NewSpec validates pip requirement lines (as in requirements.txt, one per
// element, no comments or options) and apt package names, and returns the
// canonical Spec. All problems are reported, joined.
func NewSpec(pip, apt []string) (Spec, error) {
	var errs []error
	var s Spec
	for i, line := range pip {
		req, err := parseRequirement(strings.TrimSpace(line))
		if err != nil {
			errs = append(errs, fmt.Errorf("pip requirement %d: %w", i+1, err))
			continue
		}
		s.Pip = append(s.Pip, req)
	}
	for _, name := range apt {
		if err := ValidateAptPackage(name); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Apt = append(s.Apt, name)
	}
	if len(errs) > 0 {
		return Spec{}, errors.Join(errs...)
	}
	s = s.canonical()
	return s, s.checkLimits()
}

// Empty reports whether the spec asks for nothing: the base image serves.
func (s Spec) Empty() bool { return len(s.Pip) == 0 && len(s.Apt) == 0 }

// Summary is the spec in a few words for logs: "pip: 4 packages, apt: 1 package".
func (s Spec) Summary() string {
	var parts []string
	if n := len(s.Pip); n > 0 {
		parts = append(parts, "pip: "+plural(n, "package"))
	}
	if n := len(s.Apt); n > 0 {
		parts = append(parts, "apt: "+plural(n, "package"))
	}
	if len(parts) == 0 {
		return "nothing to install"
	}
	return strings.Join(parts, ", ")
}

// Validate checks a Spec that did not come from NewSpec or
// ParseRequirements (e.g. decoded from JSON).
func (s Spec) Validate() error {
	_, err := NewSpec(s.Pip, s.Apt)
	return err
}

func (s Spec) canonical() Spec {
	return Spec{Pip: sortedUnique(s.Pip), Apt: sortedUnique(s.Apt)}
}

func (s Spec) checkLimits() error {
	if len(s.Pip) > MaxRequirements {
		return fmt.Errorf("%d pip requirements: at most %d are allowed", len(s.Pip), MaxRequirements)
	}
	if len(s.Apt) > MaxAptPackages {
		return fmt.Errorf("%d apt packages: at most %d are allowed", len(s.Apt), MaxAptPackages)
	}
	return nil
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// RequirementError is a refused requirements.txt line.
type RequirementError struct {
	Line   int    // 1-based; the first physical line of a continued line
	Text   string // the line as written (comment removed)
	Reason string
}

func (e *RequirementError) Error() string {
	return fmt.Sprintf("%s line %d: %s", RequirementsFile, e.Line, e.Reason)
}

// ParseRequirements reads a pip requirements file that may name packages
// only: PEP 508 requirements (name, [extras], version specifiers, ; markers),
// comments, blank lines and backslash continuations. Option lines (-r, -c,
// -e, -i, --index-url, --find-links, --trusted-host, ...), URLs, direct
// references (name @ url) and local paths are refused, each error naming its
// line. It returns the requirements normalised (PEP 503 names, sorted extras
// and specifiers) and sorted, ready for a Spec.
func ParseRequirements(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var (
		out        []string
		errs       []error
		pending    strings.Builder
		pendingAt  int
		lineNo     int
		continuing bool
	)
	flush := func() {
		text := pending.String()
		pending.Reset()
		continuing = false
		text = stripComment(text)
		text = strings.TrimSpace(text)
		if text == "" {
			return
		}
		if len(text) > maxRequirementLen {
			errs = append(errs, &RequirementError{Line: pendingAt, Text: text,
				Reason: fmt.Sprintf("line is longer than %d bytes", maxRequirementLen)})
			return
		}
		req, err := parseRequirement(text)
		if err != nil {
			errs = append(errs, &RequirementError{Line: pendingAt, Text: text, Reason: err.Error()})
			return
		}
		out = append(out, req)
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if !continuing {
			pendingAt = lineNo
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			pending.WriteString(body)
			continuing = true
			continue
		}
		pending.WriteString(line)
		flush()
		if len(errs) >= 20 {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", RequirementsFile, err)
	}
	if continuing {
		flush()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out = sortedUnique(out)
	if len(out) > MaxRequirements {
		return nil, fmt.Errorf("%s: %d requirements: at most %d are allowed", RequirementsFile, len(out), MaxRequirements)
	}
	return out, nil
}

// commentRE is pip's: a # at the start or after whitespace starts a comment.
var commentRE = regexp.MustCompile(`(^|\s+)#.*$`)

func stripComment(s string) string { return commentRE.ReplaceAllString(s, "") }

const pep508Hint = "expected a package name with optional [extras], version specifiers and ; environment markers (PEP 508), e.g. requests[socks]>=2.31"

var (
	nameRE      = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?`)
	directRefRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:\[[^\]]*\])?\s*@`)
	schemeRE    = regexp.MustCompile(`^(?i:[a-z][a-z0-9+.-]*)://|^(?i:git|hg|svn|bzr)\+|^(?i:https?|file|ftp):`)
	specRE      = regexp.MustCompile(`^(~=|===|==|!=|<=|>=|<|>)\s*([A-Za-z0-9._*+!-]+)$`)
	markerRE    = regexp.MustCompile(`^[A-Za-z0-9_ .'"()<>=!~*+-]+$`)
	normRE      = regexp.MustCompile(`[-_.]+`)
	inlineOptRE = regexp.MustCompile(`\s(--?[A-Za-z][A-Za-z0-9-]*)`)
	archiveExts = []string{".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".egg"}
)

// NormalizeName is PEP 503's normalised project name: lowercase, runs of
// "-", "_" and "." replaced by one "-".
func NormalizeName(name string) string {
	return normRE.ReplaceAllString(strings.ToLower(name), "-")
}

// parseRequirement turns one requirement (no comment, trimmed) into its
// canonical form, or says why it is refused.
func parseRequirement(s string) (string, error) {
	shown := quoteShort(s)
	switch {
	case s == "":
		return "", errors.New("empty requirement")
	case strings.HasPrefix(s, "-"):
		opt := s
		if i := strings.IndexAny(opt, " \t="); i > 0 {
			opt = opt[:i]
		}
		return "", fmt.Errorf("option %s is not allowed: packages come only from the cluster's package sources, so name packages and versions only", quoteShort(opt))
	case directRefRE.MatchString(s):
		return "", fmt.Errorf("%s is a direct reference (name @ URL): name a package and version from the cluster's package sources instead", shown)
	case schemeRE.MatchString(s):
		return "", fmt.Errorf("%s is a URL: name a package and version from the cluster's package sources instead", shown)
	}
	head, marker, hasMarker := strings.Cut(s, ";")
	head = strings.TrimSpace(head)
	if isLocalPath(head) {
		return "", fmt.Errorf("%s is a local path: name a package and version from the cluster's package sources instead", shown)
	}
	if m := inlineOptRE.FindStringSubmatch(head); m != nil {
		return "", fmt.Errorf("option %s is not allowed: packages come only from the cluster's package sources, so name packages and versions only", quoteShort(m[1]))
	}
	bad := fmt.Errorf("cannot parse %s: %s", shown, pep508Hint)

	name := nameRE.FindString(head)
	if name == "" {
		return "", bad
	}
	rest := strings.TrimSpace(head[len(name):])
	var b strings.Builder
	b.WriteString(NormalizeName(name))

	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", bad
		}
		var extras []string
		for _, e := range strings.Split(rest[1:end], ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			if nameRE.FindString(e) != e {
				return "", bad
			}
			extras = append(extras, NormalizeName(e))
		}
		if extras = sortedUnique(extras); len(extras) > 0 {
			b.WriteString("[" + strings.Join(extras, ",") + "]")
		}
		rest = strings.TrimSpace(rest[end+1:])
	}

	if strings.HasPrefix(rest, "(") {
		if !strings.HasSuffix(rest, ")") {
			return "", bad
		}
		rest = strings.TrimSpace(rest[1 : len(rest)-1])
	}
	if rest != "" {
		var specs []string
		for _, sp := range strings.Split(rest, ",") {
			m := specRE.FindStringSubmatch(strings.TrimSpace(sp))
			if m == nil {
				return "", bad
			}
			specs = append(specs, m[1]+m[2])
		}
		b.WriteString(strings.Join(sortedUnique(specs), ","))
	}

	if hasMarker {
		marker = strings.Join(strings.Fields(marker), " ")
		if marker == "" || !markerRE.MatchString(marker) {
			return "", fmt.Errorf("cannot parse the environment marker in %s: use markers such as python_version >= \"3.10\" or sys_platform == \"linux\"", shown)
		}
		b.WriteString("; " + marker)
	}
	return b.String(), nil
}

func isLocalPath(s string) bool {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~") || strings.ContainsAny(s, `/\`) {
		return true
	}
	lower := strings.ToLower(s)
	for _, ext := range archiveExts {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	return false
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}

var (
	aptRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[0-9][A-Za-z0-9.+~:-]*)?$`)
	shellMeta = " \t\r\n;&|$`\\\"'<>(){}[]*?!#^"
)

// ValidateAptPackage accepts a Debian package name (policy: lowercase
// letters, digits, "+", "-", ".", at least two characters, starting with a
// letter or digit), optionally pinned as name=version. It refuses anything
// else, and says so plainly when the name holds shell metacharacters.
func ValidateAptPackage(name string) error {
	shown := quoteShort(name)
	if name == "" {
		return errors.New("apt package \"\": empty name")
	}
	if strings.ContainsAny(name, shellMeta) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("apt package %s: shell metacharacters and spaces are not allowed: give Debian package names such as python3-six or jq=1.6-2.1", shown)
	}
	if !aptRE.MatchString(name) {
		return fmt.Errorf("apt package %s: not a Debian package name (lowercase letters, digits, \"+\", \"-\", \".\", at least two characters), optionally pinned as name=version", shown)
	}
	return nil
}
