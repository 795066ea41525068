//go:build !unix

package bundle

import "os"

func openRegular(name string) (*os.File, error) {
	return os.Open(name)
}
