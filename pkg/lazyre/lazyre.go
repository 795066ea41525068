// Package lazyre holds regular expressions that are compiled on first use.
//
// A package-level regexp.MustCompile runs in every process that links the
// package, before main: ferry is a short-lived command whose every
// millisecond of start-up shows in `ferry submit`, and most of its
// patterns only check rare input or read error messages.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a pattern compiled the first time it is used; a bad pattern
// panics then, as regexp.MustCompile would have at start-up.
type Regexp struct {
	get func() *regexp.Regexp
}

// New returns the lazily compiled pattern.
func New(pattern string) *Regexp {
	return &Regexp{get: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })}
}

// Compiled returns the compiled pattern.
func (r *Regexp) Compiled() *regexp.Regexp { return r.get() }

// MatchString reports whether s matches.
func (r *Regexp) MatchString(s string) bool { return r.get().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.get().FindStringSubmatch(s) }

// ReplaceAllString is regexp.Regexp.ReplaceAllString.
func (r *Regexp) ReplaceAllString(src, repl string) string {
	return r.get().ReplaceAllString(src, repl)
}
