package config

import (
	"fmt"
	"strings"
)

// SplitCommand splits a command line into arguments the way a POSIX shell
// splits words, without running a shell: spaces and tabs separate words,
// single quotes keep everything literally, double quotes keep everything but
// \" \\ \$ and \` escapes, and a backslash outside quotes escapes the next
// character (a backslash before a newline joins the lines). Nothing is
// expanded: "*.py" and "~" stay as written.
//
// Because no shell runs the command, shell syntax that would silently mean
// something else is refused with a hint: unquoted | & ; < > ( ) ` $ and #, a
// newline, "$" or "`" inside double quotes, and a leading NAME=value. An
// unbalanced quote or a trailing backslash is an error too. An empty or
// blank line gives no arguments and no error.
func SplitCommand(s string) ([]string, error) {
	var (
		args   []string
		cur    strings.Builder
		inWord bool
	)
	word := func() {
		if inWord {
			args = append(args, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			word()
			i++
		case c == '\n':
			return nil, fmt.Errorf("the command spans more than one line, but runs without a shell; write one command, or use a list such as [sh, -c, \"...\"]")
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("the command ends with a backslash")
			}
			if s[i+1] != '\n' {
				cur.WriteByte(s[i+1])
				inWord = true
			}
			i += 2
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unbalanced single quote at character %d", i+1)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			start := i
			inWord = true
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unbalanced double quote at character %d", start+1)
				}
				c := s[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					if s[i+1] != '\n' {
						cur.WriteByte(s[i+1])
					}
					i += 2
					continue
				}
				if c == '$' || c == '`' {
					return nil, fmt.Errorf("%q inside double quotes would be expanded by a shell, but the command runs without one; use single quotes to keep it literally", string(c))
				}
				cur.WriteByte(c)
				i++
			}
		case strings.IndexByte("|&;<>()`$", c) >= 0 || (c == '#' && !inWord):
			return nil, fmt.Errorf("%q at character %d is shell syntax, but the command runs without a shell; quote it to pass it literally, or use a list such as [sh, -c, \"...\"]", string(c), i+1)
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	word()
	if len(args) > 0 && isAssignment(args[0]) && !strings.ContainsAny(s[:strings.IndexByte(s, '=')], `'"\`) {
		return nil, fmt.Errorf("%q looks like a shell variable assignment, but the command runs without a shell; set variables under env: in job.yaml", args[0])
	}
	return args, nil
}

// isAssignment reports whether w has the form NAME=value.
func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
