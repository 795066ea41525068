//go:build unix

package bundle

import (
	"os"
	"syscall"
)

// openRegular opens name for reading without following a symlink and
// without blocking if it has become a fifo since the stat pass.
func openRegular(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
