package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
)

// fingerprintVersion changes whenever Pack's output for the same tree could
// change (format, normalisation, compression), so old fingerprints miss.
const fingerprintVersion = "ferry-bundle-1"

// Fingerprint scans dir as Pack would, stat'ing only, and returns a key
// that changes whenever what Pack writes for dir may change: every entry's
// path, type, permissions, size, mtime and symlink target, and on Unix its
// inode and ctime, which change with any write to the file even when its
// size and mtime are put back. Two scans with the same key pack to the same
// bytes, so a bundle packed before can be used again. It also returns the
// regular files, biggest first, and their total size, for the size cap.
func Fingerprint(ctx context.Context, dir string, level string) (string, []FileSize, int64, error) {
	entries, err := scan(ctx, dir, nil)
	if err != nil {
		return "", nil, 0, err
	}
	h := sha256.New()
	io.WriteString(h, fingerprintVersion+"\x00"+level+"\x00")
	var num [8]byte
	put := func(v int64) {
		binary.LittleEndian.PutUint64(num[:], uint64(v))
		h.Write(num[:])
	}
	for _, e := range entries {
		io.WriteString(h, e.rel)
		h.Write([]byte{0})
		put(int64(e.mode))
		put(e.size)
		put(e.mtime.UnixNano())
		put(e.change[0])
		put(e.change[1])
		io.WriteString(h, e.link)
		h.Write([]byte{0})
	}
	files, total := regularFiles(entries)
	sortBiggest(files)
	return hex.EncodeToString(h.Sum(nil)), files, total, nil
}
