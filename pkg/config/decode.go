package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ferry-hpc/ferry/pkg/lazyre"
)

// parseDoc parses data as a single YAML document and returns its root
// mapping, or nil when the document is empty. name is the file as shown in
// messages.
func parseDoc(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(name, err)
	default:
		return nil, fmt.Errorf("%s line %d: more than one YAML document; remove the \"---\" separator and merge them", name, docLine(&extra))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s line %d: want a mapping of fields such as \"name: value\", got %s", name, root.Line, nodeKind(root))
	}
	return root, nil
}

func docLine(doc *yaml.Node) int {
	if len(doc.Content) > 0 && doc.Content[0].Line > 0 {
		return doc.Content[0].Line
	}
	return doc.Line
}

// decodeFile decodes the single document in data into out (a pointer to a
// struct) with unknown fields rejected, and returns the root mapping (nil
// for an empty document). listKnown makes an unknown-field error list every
// known field instead of suggesting the closest one.
func decodeFile(name string, data []byte, out any, listKnown bool) (*yaml.Node, error) {
	root, err := parseDoc(name, data)
	if err != nil || root == nil {
		return root, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return root, decodeError(name, err, root, reflect.TypeOf(out).Elem(), listKnown)
	}
	return root, nil
}

var (
	yamlLineRE   = lazyre.New(`^yaml: line (\d+): (.*)$`)
	lineRE       = lazyre.New(`(?s)^line (\d+): (?:column (\d+): )?(.*)$`)
	unknownRE    = lazyre.New(`^field (.+) not found in type (.+)$`)
	cannotRE     = lazyre.New("(?s)^cannot unmarshal (!.*?)(?: `(.*)`)? into (.+)$")
	duplicateRE  = lazyre.New(`^mapping key (".*") already defined at line (\d+)$`)
	yamlPrefixRE = lazyre.New(`^yaml: `)
)

// syntaxError turns yaml's "yaml: line 3: msg" into "name line 3: msg".
func syntaxError(name string, err error) error {
	msg := oneLine(err.Error())
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s line %s: %s", name, m[1], m[2])
	}
	return fmt.Errorf("%s: %s", name, yamlPrefixRE.ReplaceAllString(msg, ""))
}

// decodeError rewrites yaml's decode errors into one line each that names
// the file, the line and the field.
func decodeError(name string, err error, root *yaml.Node, rootType reflect.Type, listKnown bool) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return syntaxError(name, err)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, m := range te.Errors {
		errs = append(errs, rewriteTypeError(name, m, root, rootType, listKnown))
	}
	return errors.Join(errs...)
}

func rewriteTypeError(name, msg string, root *yaml.Node, rootType reflect.Type, listKnown bool) error {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%s: %s", name, oneLine(msg))
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	rest := oneLine(m[3])
	prefixed := func(path, text string) error {
		if path == "" {
			return fmt.Errorf("%s line %d: %s", name, line, text)
		}
		return fmt.Errorf("%s line %d: %s: %s", name, line, path, text)
	}
	if u := unknownRE.FindStringSubmatch(rest); u != nil {
		field, typ := u[1], u[2]
		path := findKey(root, line, field)
		known := knownKeys(rootType)[typ]
		if path == "" {
			path = field
		}
		text := fmt.Sprintf("unknown field %q", path)
		switch {
		case listKnown && len(known) > 0:
			text += fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
		default:
			if s := closest(field, known); s != "" {
				text += fmt.Sprintf(" (did you mean %q?)", strings.TrimSuffix(path, field)+s)
			}
		}
		return fmt.Errorf("%s line %d: %s", name, line, text)
	}
	if c := cannotRE.FindStringSubmatch(rest); c != nil {
		tag, value, goType := c[1], c[2], c[3]
		path := findValue(root, line, tagKind(tag), value)
		return prefixed(path, fmt.Sprintf("want %s, got %s", describeType(goType), describeGot(tag, value)))
	}
	if d := duplicateRE.FindStringSubmatch(rest); d != nil {
		return prefixed("", fmt.Sprintf("key %s appears twice (first at line %s)", d[1], d[2]))
	}
	return prefixed(findAt(root, line, col), rest)
}

// locate walks the tree under n in document order and calls fn with each
// node's dotted path and whether it is a mapping key. Aliases are not
// followed: their lines belong to the anchor.
func locate(n *yaml.Node, path string, fn func(path string, n *yaml.Node, isKey bool)) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path
			if k.Kind == yaml.ScalarNode {
				p = joinPath(path, k.Value)
			}
			fn(p, k, true)
			fn(p, v, false)
			locate(v, p, fn)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			fn(p, v, false)
			locate(v, p, fn)
		}
	}
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// findKey returns the path of the mapping key named key on line.
func findKey(root *yaml.Node, line int, key string) (found string) {
	locate(root, "", func(path string, n *yaml.Node, isKey bool) {
		if found == "" && isKey && n.Line == line && n.Value == key {
			found = path
		}
	})
	return found
}

// findValue returns the path of the first value on line of the given kind
// whose text matches value (yaml shortens long values to 7 chars and "...").
// Values are preferred; keys (a list used as a key) come second.
func findValue(root *yaml.Node, line int, kind yaml.Kind, value string) string {
	short, cut := strings.CutSuffix(value, "...")
	var asValue, asKey string
	locate(root, "", func(path string, n *yaml.Node, isKey bool) {
		if n.Line != line || n.Kind != kind {
			return
		}
		if kind == yaml.ScalarNode && n.Value != value && !(cut && strings.HasPrefix(n.Value, short)) {
			return
		}
		switch {
		case !isKey && asValue == "":
			asValue = path
		case isKey && asKey == "":
			asKey = path
		}
	})
	if asValue != "" {
		return asValue
	}
	return asKey
}

// findAt returns the path of the value at line and column, or without a
// column the first scalar value on line.
func findAt(root *yaml.Node, line, col int) (found string) {
	locate(root, "", func(path string, n *yaml.Node, isKey bool) {
		if found != "" || isKey || n.Line != line {
			return
		}
		if (col > 0 && n.Column == col) || (col == 0 && n.Kind == yaml.ScalarNode) {
			found = path
		}
	})
	return found
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i].Kind == yaml.ScalarNode {
			return n.Content[i+1]
		}
	}
	return nil
}

// mapKey returns the key node of key in mapping n, or nil.
func mapKey(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i].Kind == yaml.ScalarNode {
			return n.Content[i]
		}
	}
	return nil
}

// walkKeys calls fn for every mapping key under root, descending into
// mapping values, with the key's dotted path.
func walkKeys(n *yaml.Node, prefix string, fn func(path string, key *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := joinPath(prefix, k.Value)
		fn(p, k)
		walkKeys(v, p, fn)
	}
}

// knownKeys maps the name of every struct type reachable from t (as yaml
// prints it, e.g. "config.Redis") to its yaml keys, in declaration order.
func knownKeys(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if t.Kind() != reflect.Struct || out[t.String()] != nil {
			return
		}
		var keys []string
		for i := range t.NumField() {
			f := t.Field(i)
			key := yamlKey(f)
			if key == "" {
				continue
			}
			keys = append(keys, key)
			walk(f.Type)
		}
		out[t.String()] = keys
	}
	walk(t)
	return out
}

// yamlKey is the yaml name of an exported, tagged struct field, or "".
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if key == "-" {
		return ""
	}
	return key
}

// closest returns the known key nearest to s, if it is near enough to be a
// likely typo.
func closest(s string, known []string) string {
	best, bestD := "", 3
	if len(s) < 5 {
		bestD = 2
	}
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func tagKind(tag string) yaml.Kind {
	switch tag {
	case "!!seq":
		return yaml.SequenceNode
	case "!!map":
		return yaml.MappingNode
	}
	return yaml.ScalarNode
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	return describeGot(n.ShortTag(), n.Value)
}

// describeType names a Go type the way a YAML author thinks of it.
func describeType(goType string) string {
	switch goType {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	case "[]interface {}":
		return "a list"
	case "map[string]string":
		return "a mapping of names to strings"
	}
	if strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "config.") {
		return "a mapping"
	}
	return goType
}

// describeGot names a YAML value in a message.
func describeGot(tag, value string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "nothing"
	case "!!str":
		return strconv.Quote(value)
	case "!!int", "!!float", "!!bool":
		return value
	}
	if value != "" {
		return strconv.Quote(value)
	}
	return "a value tagged " + strconv.Quote(tag)
}

// oneLine keeps a message on one line whatever a file's tags or values hold.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

// typeError is how the package's own YAML unmarshalers report a bad value:
// yaml collects it with the others, and decodeError adds the file and field.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))}}
}
