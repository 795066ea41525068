package bundle

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// IgnoreFile is the name of the file, at the top of a project, that lists
// what Pack leaves out, in gitignore syntax.
const IgnoreFile = ".ferryignore"

// ignorer decides which paths Pack leaves out. Unlike git, a negation
// ("!data/big/keep.txt") can bring back a file below an ignored directory:
// Pack descends into an ignored directory when some negation could match
// beneath it, and keeps only what a negation re-includes.
type ignorer struct {
	patterns  []gitignore.Pattern
	negations [][]string // components of each "!" pattern, for mayReinclude
}

// loadIgnore reads dir/.ferryignore; a missing file ignores nothing.
func loadIgnore(dir string) (*ignorer, error) {
	data, err := os.ReadFile(filepath.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &ignorer{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	return parseIgnore(data), nil
}

func parseIgnore(data []byte) *ignorer {
	ig := &ignorer{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ig.patterns = append(ig.patterns, gitignore.ParsePattern(line, nil))
		if neg, ok := strings.CutPrefix(line, "!"); ok {
			neg = strings.TrimSuffix(strings.TrimRight(neg, " "), "/")
			ig.negations = append(ig.negations, strings.Split(neg, "/"))
		}
	}
	return ig
}

// excluded reports whether the path (components relative to the project)
// is left out. parentExcluded says its directory was left out: then only an
// explicit negation brings it back.
func (ig *ignorer) excluded(parts []string, isDir, parentExcluded bool) bool {
	for i := len(ig.patterns) - 1; i >= 0; i-- {
		switch ig.patterns[i].Match(parts, isDir) {
		case gitignore.Exclude:
			return true
		case gitignore.Include:
			return false
		}
	}
	return parentExcluded
}

// mayReinclude reports whether some negation could match a path below the
// directory dir, so an excluded dir must still be walked. It errs on yes.
func (ig *ignorer) mayReinclude(dir []string) bool {
	for _, neg := range ig.negations {
		if strings.Contains(strings.Join(neg, "/"), "**") {
			return true
		}
		p := neg
		if len(p) > 0 && p[0] == "" { // anchored: "/a/b"
			p = p[1:]
		} else if len(p) == 1 { // a bare name matches at any depth
			return true
		}
		if len(p) <= len(dir) {
			continue
		}
		match := true
		for i, d := range dir {
			if ok, err := path.Match(p[i], d); err != nil || !ok {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
