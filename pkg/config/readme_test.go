package config_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/config"
)

// README's config reference is the generated one: regenerate it with
// `ferry config --reference` when a field changes.
func TestReadmeHasCurrentReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), config.Reference(), "README.md's config reference is stale: paste `ferry config --reference` into it")
}
