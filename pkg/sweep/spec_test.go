package sweep

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGridSize(t *testing.T) {
	s, err := ParseSpec("sweep.yaml", []byte(`
params:
  lr: [0.1, 0.01, 0.001]
  layers: [1, 2]
  batch: {values: [16, 32]}
  momentum: 0.9
`))
	require.NoError(t, err)
	assert.True(t, s.Grid())
	assert.Equal(t, 12, s.Size())
	tasks, err := s.Expand()
	require.NoError(t, err)
	require.Len(t, tasks, 12)
	seen := map[[3]any]bool{}
	for _, m := range tasks {
		assert.Equal(t, 0.9, m["momentum"])
		seen[[3]any{m["lr"], m["layers"], m["batch"]}] = true
	}
	assert.Len(t, seen, 12, "every combination exactly once")
	// stable order: the last-named parameter (sorted by name) varies fastest
	assert.Equal(t, map[string]any{"batch": 16, "layers": 1, "lr": 0.1, "momentum": 0.9}, tasks[0])
	assert.Equal(t, map[string]any{"batch": 16, "layers": 1, "lr": 0.01, "momentum": 0.9}, tasks[1])
}

func TestRandomIsSeeded(t *testing.T) {
	spec := []byte(`
count: 50
seed: 7
params:
  opt: [adam, sgd]
  dropout: {min: 0.1, max: 0.5}
  wd: {min: 1.0e-5, max: 1.0e-1, log: true}
  width: {min: 16, max: 256, int: true}
  hidden: {min: 8, max: 64, int: true, count_min: 1, count_max: 3}
  fixed: 3
`)
	a, err := ParseSpec("s.yaml", spec)
	require.NoError(t, err)
	b, err := ParseSpec("s.yaml", spec)
	require.NoError(t, err)
	ta, err := a.Expand()
	require.NoError(t, err)
	tb, err := b.Expand()
	require.NoError(t, err)
	assert.Equal(t, ta, tb, "the same seed draws the same tasks")
	require.Len(t, ta, 50)
	opts := map[any]int{}
	for _, m := range ta {
		opts[m["opt"]]++
		d := m["dropout"].(float64)
		assert.True(t, d >= 0.1 && d <= 0.5, "dropout %v", d)
		wd := m["wd"].(float64)
		assert.True(t, wd >= 1e-5 && wd <= 1e-1, "wd %v", wd)
		w := m["width"].(int64)
		assert.True(t, w >= 16 && w <= 256, "width %v", w)
		h := m["hidden"].([]any)
		assert.True(t, len(h) >= 1 && len(h) <= 3, "hidden %v", h)
		for _, x := range h {
			assert.True(t, x.(int64) >= 8 && x.(int64) <= 64)
		}
		assert.Equal(t, 3, m["fixed"])
	}
	assert.Len(t, opts, 2, "both choices drawn")

	// the log scale puts about half the draws below the geometric midpoint
	below := 0
	for _, m := range ta {
		if m["wd"].(float64) < math.Sqrt(1e-5*1e-1) {
			below++
		}
	}
	assert.InDelta(t, 25, below, 12)

	c, err := ParseSpec("s.yaml", []byte("count: 50\nseed: 8\nparams:\n  dropout: {min: 0.1, max: 0.5}\n"))
	require.NoError(t, err)
	tc, _ := c.Expand()
	assert.NotEqual(t, ta[0]["dropout"], tc[0]["dropout"], "another seed, other draws")
}

func TestSpecErrors(t *testing.T) {
	cases := map[string]struct{ spec, want string }{
		"unknown top key":      {"params: {a: [1]}\nsead: 3\n", `line 2: unknown key "sead"`},
		"unknown param key":    {"count: 2\nparams:\n  a: {min: 1, max: 2, step: 1}\n", `unknown key "step"`},
		"empty list":           {"params:\n  a: []\n", "empty list"},
		"empty choices":        {"count: 2\nparams:\n  a: {choices: []}\n", "empty choices"},
		"empty range":          {"count: 2\nparams:\n  a: {min: 2, max: 1}\n", "empty range: min 2 is above max 1"},
		"empty int range":      {"count: 2\nparams:\n  a: {min: 1.2, max: 1.8, int: true}\n", "no whole number"},
		"half a range":         {"count: 2\nparams:\n  a: {min: 1}\n", "needs both min and max"},
		"log of zero":          {"count: 2\nparams:\n  a: {min: 0, max: 1, log: true}\n", "log scale needs min > 0"},
		"bad count range":      {"count: 2\nparams:\n  a: {choices: [1], count_min: 3, count_max: 2}\n", "empty count range"},
		"range in a grid":      {"method: grid\nparams:\n  a: {min: 0, max: 1}\n", "use method: random"},
		"random without count": {"method: random\nparams:\n  a: [1]\n", "needs count"},
		"count in a grid":      {"method: grid\ncount: 3\nparams:\n  a: [1]\n", "count is for random"},
		"zero count":           {"count: 0\nparams:\n  a: [1]\n", "at least 1"},
		"no params":            {"count: 3\n", "no params"},
		"empty file":           {"", "is empty"},
		"not a mapping":        {"- a\n", "want a mapping"},
		"bad method":           {"method: bayes\nparams: {a: [1]}\n", "grid or random"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSpec("sweep.yaml", []byte(c.spec))
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Contains(t, err.Error(), "sweep.yaml")
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestGridTooBig(t *testing.T) {
	s, err := ParseSpec("s", []byte("params:\n  a: [1,2,3,4,5,6,7,8,9,10]\n  b: [1,2,3,4,5,6,7,8,9,10]\n  c: [1,2,3,4,5,6,7,8,9,10]\n  d: [1,2,3,4,5,6,7,8,9,10]\n  e: [1,2,3,4,5,6,7,8,9,10]\n  f: [1,2]\n"))
	require.NoError(t, err)
	_, err = s.Expand()
	assert.ErrorContains(t, err, "over the limit")
}

func TestSplit(t *testing.T) {
	assert.Equal(t, []Array{{0, 11}}, Split(12, 1001))
	assert.Equal(t, []Array{{0, 1000}, {1001, 2001}, {2002, 2499}}, Split(2500, 1001))
	assert.Equal(t, []Array{{0, 999}}, Split(1000, 1000))
	assert.Equal(t, []Array{{0, 0}, {1, 1}}, Split(2, 1))
	assert.Nil(t, Split(0, 10))
	total := 0
	for _, a := range Split(5003, 1001) {
		assert.LessOrEqual(t, a.Last-a.First+1, 1001)
		total += a.Last - a.First + 1
	}
	assert.Equal(t, 5003, total, "every task in exactly one array")
	assert.Equal(t, "0-1000%4", Array{First: 1001, Last: 2001}.Range(4))
	assert.Equal(t, "0-11", Array{First: 0, Last: 11}.Range(0))
}
