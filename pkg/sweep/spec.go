package sweep

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is a parsed sweep.yaml:
//
//	method: grid          # or random; default: random when count is set
//	count: 12             # random: how many tasks
//	seed: 42              # random: the same seed gives the same tasks
//	params:
//	  lr: [0.1, 0.01]                   # grid axis / random choice
//	  momentum: 0.9                     # constant
//	  layers: {choices: [1, 2, 3]}
//	  dropout: {min: 0.0, max: 0.5}
//	  wd: {min: 1.0e-5, max: 1.0e-1, log: true}
//	  width: {min: 16, max: 256, int: true}
//	  hidden: {min: 16, max: 128, int: true, count_min: 1, count_max: 3}  # a list of 1..3 values
type Spec struct {
	Method string
	Count  int
	Seed   uint64
	Params []Param // sorted by name
}

// Param is one parameter's domain.
type Param struct {
	Name     string
	Constant any   // set when the value never changes
	Values   []any // a list: grid axis, or random choices
	Min, Max float64
	HasRange bool
	Log, Int bool
	CountMin int // >0: the parameter is a list of CountMin..CountMax draws
	CountMax int
}

// Grid reports whether the spec is a grid.
func (s *Spec) Grid() bool { return s.Method == "grid" }

// ReadSpec reads and checks a sweep spec file.
func ReadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseSpec(path, data)
}

var topKeys = []string{"method", "count", "seed", "params"}
var paramKeys = []string{"choices", "values", "min", "max", "log", "int", "count_min", "count_max"}

// ParseSpec parses a sweep spec. name is the file as shown in messages.
func ParseSpec(name string, data []byte) (*Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s is empty: give params to sweep over", name)
		}
		return nil, fmt.Errorf("%s: %v", name, oneLine(err.Error()))
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping with params (and method, count, seed)", name)
	}
	root := doc.Content[0]
	s := &Spec{}
	var paramsNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "method":
			s.Method = v.Value
			if s.Method != "grid" && s.Method != "random" {
				return nil, fmt.Errorf("%s line %d: method must be grid or random, not %q", name, v.Line, v.Value)
			}
		case "count":
			if err := v.Decode(&s.Count); err != nil || s.Count < 1 {
				return nil, fmt.Errorf("%s line %d: count must be a whole number of at least 1", name, v.Line)
			}
		case "seed":
			if err := v.Decode(&s.Seed); err != nil {
				return nil, fmt.Errorf("%s line %d: seed must be a whole number", name, v.Line)
			}
		case "params":
			paramsNode = v
		default:
			return nil, fmt.Errorf("%s line %d: unknown key %q (known: %s)", name, k.Line, k.Value, strings.Join(topKeys, ", "))
		}
	}
	if s.Method == "" {
		s.Method = "grid"
		if s.Count > 0 {
			s.Method = "random"
		}
	}
	if s.Method == "random" && s.Count == 0 {
		return nil, fmt.Errorf("%s: random sampling needs count: how many tasks to draw", name)
	}
	if s.Method == "grid" && s.Count > 0 {
		return nil, fmt.Errorf("%s: count is for random sampling; a grid's size is the product of its lists", name)
	}
	if paramsNode == nil || paramsNode.Kind != yaml.MappingNode || len(paramsNode.Content) == 0 {
		return nil, fmt.Errorf("%s: no params to sweep over", name)
	}
	for i := 0; i+1 < len(paramsNode.Content); i += 2 {
		k, v := paramsNode.Content[i], paramsNode.Content[i+1]
		p, err := parseParam(name, k.Value, v, s.Grid())
		if err != nil {
			return nil, err
		}
		s.Params = append(s.Params, p)
	}
	sort.Slice(s.Params, func(i, j int) bool { return s.Params[i].Name < s.Params[j].Name })
	return s, nil
}

func parseParam(file, pname string, v *yaml.Node, grid bool) (Param, error) {
	p := Param{Name: pname}
	where := fmt.Sprintf("%s line %d: param %q", file, v.Line, pname)
	switch v.Kind {
	case yaml.ScalarNode:
		if err := v.Decode(&p.Constant); err != nil {
			return p, fmt.Errorf("%s: %v", where, err)
		}
		return p, nil
	case yaml.SequenceNode:
		if err := v.Decode(&p.Values); err != nil {
			return p, fmt.Errorf("%s: %v", where, err)
		}
		if len(p.Values) == 0 {
			return p, fmt.Errorf("%s: empty list: give at least one value", where)
		}
		return p, nil
	case yaml.MappingNode:
	default:
		return p, fmt.Errorf("%s: want a value, a list, or a mapping with choices or min/max", where)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		seen[k.Value] = true
		var err error
		switch k.Value {
		case "choices", "values":
			err = val.Decode(&p.Values)
			if err == nil && len(p.Values) == 0 {
				return p, fmt.Errorf("%s: empty %s: give at least one value", where, k.Value)
			}
		case "min":
			err = val.Decode(&p.Min)
		case "max":
			err = val.Decode(&p.Max)
		case "log":
			err = val.Decode(&p.Log)
		case "int":
			err = val.Decode(&p.Int)
		case "count_min":
			err = val.Decode(&p.CountMin)
		case "count_max":
			err = val.Decode(&p.CountMax)
		default:
			return p, fmt.Errorf("%s: unknown key %q (known: %s)", where, k.Value, strings.Join(paramKeys, ", "))
		}
		if err != nil {
			return p, fmt.Errorf("%s: %s: %v", where, k.Value, oneLine(err.Error()))
		}
	}
	p.HasRange = seen["min"] || seen["max"]
	switch {
	case p.HasRange && (!seen["min"] || !seen["max"]):
		return p, fmt.Errorf("%s: a range needs both min and max", where)
	case p.HasRange && p.Values != nil:
		return p, fmt.Errorf("%s: give either choices or min/max, not both", where)
	case !p.HasRange && p.Values == nil:
		return p, fmt.Errorf("%s: give choices, or min and max", where)
	case p.HasRange && p.Min > p.Max:
		return p, fmt.Errorf("%s: empty range: min %v is above max %v", where, p.Min, p.Max)
	case p.HasRange && p.Log && p.Min <= 0:
		return p, fmt.Errorf("%s: a log scale needs min > 0, got %v", where, p.Min)
	case p.HasRange && p.Int && math.Ceil(p.Min) > math.Floor(p.Max):
		return p, fmt.Errorf("%s: empty range: no whole number between %v and %v", where, p.Min, p.Max)
	case (seen["count_min"] || seen["count_max"]) && (p.CountMin < 0 || p.CountMax < p.CountMin || p.CountMax == 0):
		return p, fmt.Errorf("%s: empty count range: count_min %d, count_max %d", where, p.CountMin, p.CountMax)
	case !p.HasRange && (seen["log"] || seen["int"]):
		return p, fmt.Errorf("%s: log and int apply to min/max ranges", where)
	}
	if seen["count_min"] && !seen["count_max"] {
		p.CountMax = p.CountMin
	}
	if seen["count_max"] && !seen["count_min"] {
		p.CountMin = p.CountMax
	}
	if grid && (p.HasRange || p.CountMax > 0) {
		return p, fmt.Errorf("%s: min/max and count_min/count_max are sampled: use method: random with a count", where)
	}
	return p, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// MaxTasks bounds a sweep, so that a typo cannot write a million job dirs.
const MaxTasks = 100000

// Size is the number of tasks the spec expands to.
func (s *Spec) Size() int {
	if !s.Grid() {
		return s.Count
	}
	n := 1
	for _, p := range s.Params {
		if p.Values != nil {
			n *= len(p.Values)
			if n > MaxTasks {
				return n
			}
		}
	}
	return n
}

// Expand returns the parameter sets, one per task, in a stable order:
// a grid varies the last-named parameter fastest; random draws are a pure
// function of the seed.
func (s *Spec) Expand() ([]map[string]any, error) {
	n := s.Size()
	if n > MaxTasks {
		return nil, fmt.Errorf("the sweep has %d or more tasks, over the limit of %d", n, MaxTasks)
	}
	out := make([]map[string]any, n)
	if s.Grid() {
		for i := range out {
			m := map[string]any{}
			rest := i
			for j := len(s.Params) - 1; j >= 0; j-- {
				p := s.Params[j]
				if p.Values == nil {
					m[p.Name] = p.Constant
					continue
				}
				m[p.Name] = p.Values[rest%len(p.Values)]
				rest /= len(p.Values)
			}
			out[i] = m
		}
		return out, nil
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x6665727279)) // "ferry"
	for i := range out {
		m := map[string]any{}
		for _, p := range s.Params {
			m[p.Name] = p.draw(rng)
		}
		out[i] = m
	}
	return out, nil
}

func (p *Param) draw(rng *rand.Rand) any {
	if p.Constant != nil || (p.Values == nil && !p.HasRange) {
		return p.Constant
	}
	if p.CountMax > 0 {
		n := p.CountMin + rng.IntN(p.CountMax-p.CountMin+1)
		list := make([]any, n)
		for i := range list {
			list[i] = p.one(rng)
		}
		return list
	}
	return p.one(rng)
}

func (p *Param) one(rng *rand.Rand) any {
	if p.Values != nil {
		return p.Values[rng.IntN(len(p.Values))]
	}
	if p.Int {
		lo, hi := int64(math.Ceil(p.Min)), int64(math.Floor(p.Max))
		if p.Log {
			v := math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi)+1)-math.Log(float64(lo))))
			return min(max(int64(v), lo), hi)
		}
		return lo + rng.Int64N(hi-lo+1)
	}
	if p.Log {
		return math.Exp(math.Log(p.Min) + rng.Float64()*(math.Log(p.Max)-math.Log(p.Min)))
	}
	return p.Min + rng.Float64()*(p.Max-p.Min)
}

// Array is one Slurm job array of a sweep: tasks First..Last of the sweep,
// submitted with --array=0-(Last-First).
type Array struct {
	First, Last int
}

// Split cuts n tasks into arrays of at most maxArraySize tasks each (Slurm's
// MaxArraySize bounds the array index: indices run 0..MaxArraySize-1).
func Split(n, maxArraySize int) []Array {
	if maxArraySize < 1 {
		maxArraySize = 1
	}
	var out []Array
	for first := 0; first < n; first += maxArraySize {
		out = append(out, Array{First: first, Last: min(first+maxArraySize, n) - 1})
	}
	return out
}

// Range renders an array's --array value, with %K when maxParallel > 0.
func (a Array) Range(maxParallel int) string {
	r := fmt.Sprintf("0-%d", a.Last-a.First)
	if maxParallel > 0 {
		r += fmt.Sprintf("%%%d", maxParallel)
	}
	return r
}
