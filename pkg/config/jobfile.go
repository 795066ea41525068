package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/ferry-hpc/ferry/pkg/env"
	"github.com/ferry-hpc/ferry/pkg/job"
	"gopkg.in/yaml.v3"
)

// JobFileName is the per-project file's name inside a project dir.
const JobFileName = "job.yaml"

// MaxJobFileSize is the largest job.yaml accepted. Params are meant for
// settings; data belongs in the project's files.
const MaxJobFileSize = 1 << 20

// JobFile is a project's job.yaml: what to run and with what. Every field is
// optional; flags and the cluster's defaults fill the rest.
type JobFile struct {
	Project   string            `yaml:"project"`
	Name      string            `yaml:"name"`
	Command   StringOrList      `yaml:"command"`
	Image     string            `yaml:"image"`
	CPUs      int               `yaml:"cpus"`
	Mem       string            `yaml:"mem"`
	GPUs      int               `yaml:"gpus"`
	Time      string            `yaml:"time"`
	Partition string            `yaml:"partition"`
	Env       map[string]string `yaml:"env"`
	// Params are handed to the job as params.json. They are plain JSON
	// values: map[string]any, []any, string, bool, nil, int, int64, uint64
	// or float64. Keys are strings as written (a key 1 becomes "1"), and
	// dates stay the text that was written.
	Params  map[string]any `yaml:"params"`
	Network string         `yaml:"network"`
	// Apt are Debian packages the job's environment adds to its image
	// (with requirements.txt beside job.yaml for pip): built once per
	// content hash by the cluster, see package env.
	Apt []string `yaml:"apt"`
}

// StringOrList is a command given as one line ("python3 main.py --x 'a b'",
// split by SplitCommand) or as a list of arguments.
type StringOrList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *StringOrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			*s = nil
			return nil
		}
		args, err := SplitCommand(n.Value)
		if err != nil {
			return typeError(n, "%v", err)
		}
		*s = args
	case yaml.SequenceNode:
		args := make([]string, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				return typeError(item, "want a string, got %s", nodeKindOrNull(item))
			}
			args = append(args, item.Value)
		}
		*s = args
	default:
		return typeError(n, "want a command line or a list of arguments, got %s", nodeKind(n))
	}
	return nil
}

func nodeKindOrNull(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return "nothing"
	}
	return nodeKind(n)
}

// ReadJobFile reads and parses the job.yaml at path. A missing file returns
// an error that satisfies errors.Is(err, fs.ErrNotExist); callers that treat
// job.yaml as optional test for it. Messages name the file as path is given.
func ReadJobFile(path string) (*JobFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxJobFileSize+1))
	if err != nil {
		return nil, err // an *fs.PathError naming the file
	}
	return ParseJobFile(path, data)
}

// ParseJobFile parses the contents of a job.yaml; name is the file as shown
// in messages. An empty file is a JobFile with nothing set. Errors name the
// line: a syntax error, an unknown field (listing the known ones), a value
// of the wrong type, more than one YAML document, params that JSON cannot
// carry, and values that cannot be right whatever the flags say (a negative
// cpus, a mem or time that does not parse, an invalid project name).
func ParseJobFile(name string, data []byte) (*JobFile, error) {
	if len(data) > MaxJobFileSize {
		return nil, fmt.Errorf("%s is larger than %s; keep data in the project's files and read it from the job", name, Size(MaxJobFileSize))
	}
	jf := &JobFile{}
	root, err := decodeFile(name, data, jf, true)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return jf, nil
	}
	if pn := mapValue(root, "params"); pn != nil {
		jf.Params, err = decodeParams(name, root, pn)
		if err != nil {
			return nil, err
		}
	}
	if jf.Params, err = jsonParams(name, jf.Params); err != nil {
		return nil, err
	}
	if err := jf.check(name, root); err != nil {
		return nil, err
	}
	return jf, nil
}

// check reports values that are wrong whatever else is set, with their line.
func (jf *JobFile) check(name string, root *yaml.Node) error {
	type problem struct {
		line int
		err  error
	}
	var problems []problem
	bad := func(key string, format string, args ...any) {
		p := problem{err: fmt.Errorf("%s: %s: %s", name, key, fmt.Sprintf(format, args...))}
		if k := mapKey(root, key); k != nil {
			p = problem{k.Line, fmt.Errorf("%s line %d: %s: %s", name, k.Line, key, fmt.Sprintf(format, args...))}
		}
		problems = append(problems, p)
	}
	if jf.Project != "" {
		if err := job.ValidateProject(jf.Project); err != nil {
			bad("project", "%v", err)
		}
	}
	if jf.CPUs < 0 {
		bad("cpus", "must not be negative, got %d", jf.CPUs)
	}
	if jf.GPUs < 0 {
		bad("gpus", "must not be negative, got %d", jf.GPUs)
	}
	if jf.Mem != "" {
		if _, err := job.ParseMem(jf.Mem); err != nil {
			bad("mem", "%v", err)
		}
	}
	if jf.Time != "" {
		if _, err := job.ParseTime(jf.Time); err != nil {
			bad("time", "%v", err)
		}
	}
	for _, p := range jf.Apt {
		if err := env.ValidateAptPackage(p); err != nil {
			bad("apt", "%v", err)
		}
	}
	slices.SortStableFunc(problems, func(a, b problem) int { return a.line - b.line })
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p.err
	}
	return errors.Join(errs...)
}

// decodeParams decodes the params mapping so that it can become JSON: keys
// are kept as written, dates and binary values stay text, and NaN or
// infinity is an error naming the line.
func decodeParams(name string, root, pn *yaml.Node) (map[string]any, error) {
	seen := map[*yaml.Node]bool{}
	var prep func(n *yaml.Node, path string) error
	prep = func(n *yaml.Node, path string) error {
		if n == nil || seen[n] {
			return nil
		}
		seen[n] = true
		switch n.Kind {
		case yaml.AliasNode:
			return prep(n.Alias, path)
		case yaml.ScalarNode:
			switch n.ShortTag() {
			case "!!timestamp", "!!binary":
				n.Tag = "!!str"
			case "!!float":
				var f float64
				if err := n.Decode(&f); err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
					return fmt.Errorf("%s line %d: %s: %s is not a number JSON can carry (no NaN or infinity); quote it to pass a string", name, n.Line, path, n.Value)
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if err := prep(c, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Kind == yaml.AliasNode && k.Alias != nil {
					k = k.Alias
				}
				if k.Kind != yaml.ScalarNode {
					return fmt.Errorf("%s line %d: %s: keys must be plain strings, not %s", name, k.Line, path, nodeKind(k))
				}
				if k.ShortTag() == "!!merge" {
					if err := prep(v, path); err != nil {
						return err
					}
					continue
				}
				if k.ShortTag() != "!!str" {
					k.Tag = "!!str"
				}
				if err := prep(v, path+"."+k.Value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := prep(pn, "params"); err != nil {
		return nil, err
	}
	var m map[string]any
	if err := pn.Decode(&m); err != nil {
		return nil, decodeError(name, err, root, reflect.TypeFor[JobFile](), true)
	}
	return m, nil
}

// jsonParams makes sure params marshal to JSON as the user meant: it
// converts what yaml may still hand back (maps with non-string keys, times)
// and refuses NaN, infinity and text that is not UTF-8.
func jsonParams(name string, m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	v, err := jsonValue(m, "params")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return v.(map[string]any), nil
}

func jsonValue(v any, path string) (any, error) {
	switch v := v.(type) {
	case nil, bool, int, int64, uint64:
		return v, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: %v is not a number JSON can carry (no NaN or infinity)", path, v)
		}
		return v, nil
	case string:
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("%s: not valid UTF-8 text", path)
		}
		return v, nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := jsonValue(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if !utf8.ValidString(k) {
				return nil, fmt.Errorf("%s: a key is not valid UTF-8 text", path)
			}
			c, err := jsonValue(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			var ks string
			switch k := k.(type) {
			case string:
				ks = k
			case nil, bool, int, int64, uint64, float64:
				ks = fmt.Sprint(k)
			default:
				return nil, fmt.Errorf("%s: keys must be plain strings", path)
			}
			if _, dup := out[ks]; dup {
				return nil, fmt.Errorf("%s: key %q appears twice", path, ks)
			}
			c, err := jsonValue(e, path+"."+ks)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: %T is not a JSON value", path, v)
}

// ParseParams reads a params file (`ferry submit --params FILE`): a JSON or
// YAML mapping, read exactly as job.yaml's params are.
func ParseParams(name string, data []byte) (map[string]any, error) {
	if len(data) > MaxJobFileSize {
		return nil, fmt.Errorf("%s is larger than %s; keep data in the project's files and read it from the job", name, Size(MaxJobFileSize))
	}
	root, err := parseDoc(name, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return map[string]any{}, nil
	}
	m, err := decodeParams(name, root, root)
	if err != nil {
		return nil, err
	}
	return jsonParams(name, m)
}
