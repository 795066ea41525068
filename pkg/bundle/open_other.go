//go:build !unix

package bundle

import "os"

func openRegular(name string) (*os.File, error) {
	return os.Open(name)
}

// changeStamp is empty where the platform has no inode and ctime: the
// fingerprint then rests on size and mtime alone.
func changeStamp(os.FileInfo) [2]int64 { return [2]int64{} }
