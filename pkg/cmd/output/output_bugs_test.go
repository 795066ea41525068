package output_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ferry-hpc/ferry/pkg/cmd/output"
)

func TestAgoFuture(t *testing.T) {
	now := time.Now()
	assert.Equal(t, "0s ago", output.Ago(now.Add(5*time.Second), now, true))
}
