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

// changeStamp is the inode and ctime of fi: together they change whenever
// the file's content or metadata does, whatever its mtime says.
func changeStamp(fi os.FileInfo) [2]int64 {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]int64{}
	}
	return [2]int64{int64(st.Ino), st.Ctim.Nano()}
}
