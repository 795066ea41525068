package docker

import (
	"os"
	"testing"

	"github.com/ferry-hpc/ferry/pkg/env/egress"
)

// TestMain lets this test binary, copied into a proxy container by
// OpenEgress, serve as the egress proxy, as ferryd does.
func TestMain(m *testing.M) {
	egress.Main()
	os.Exit(m.Run())
}
