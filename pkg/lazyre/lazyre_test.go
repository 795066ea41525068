package lazyre

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLazy(t *testing.T) {
	r := New(`^a(\d+)$`)
	assert.True(t, r.MatchString("a12"))
	assert.False(t, r.MatchString("b12"))
	assert.Equal(t, []string{"a7", "7"}, r.FindStringSubmatch("a7"))
	assert.Equal(t, "x", r.ReplaceAllString("a3", "x"))
	assert.Same(t, r.Compiled(), r.Compiled(), "compiled once")
}

func TestBadPatternPanicsOnFirstUse(t *testing.T) {
	r := New(`(`) // no panic yet
	assert.Panics(t, func() { r.MatchString("x") })
}
