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

// Tree is one stat pass over a project dir: its fingerprint, its size for
// the cap, and the entries Pack would pack. Handed to Pack (Options.Scan),
// it makes Pack pack exactly the entries the fingerprint covered, without
// walking the dir again.
type Tree struct {
	// Key changes whenever what Pack writes for the dir may change: every
	// entry's path, type, permissions, size, mtime and symlink target, and
	// on Unix its inode and ctime, which change with any write to the file
	// even when its size and mtime are put back. Two scans with the same
	// key pack to the same bytes, so a bundle packed before can be used
	// again.
	Key   string
	Files []FileSize // the regular files, biggest first
	Total int64      // their total size

	dir     string
	entries []entry
}

// Fingerprint scans dir as Pack would, stat'ing only, and returns the
// scan's key, its regular files (biggest first) and their total size.
func Fingerprint(ctx context.Context, dir string, level string) (string, []FileSize, int64, error) {
	sc, err := ScanTree(ctx, dir, level)
	if err != nil {
		return "", nil, 0, err
	}
	return sc.Key, sc.Files, sc.Total, nil
}

// ScanTree scans dir as Pack would, stat'ing only; level is the compression
// setting the bundle will be packed with, part of the key.
func ScanTree(ctx context.Context, dir string, level string) (*Tree, error) {
	entries, err := scan(ctx, dir, nil)
	if err != nil {
		return nil, err
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
	return &Tree{Key: hex.EncodeToString(h.Sum(nil)), Files: files, Total: total, dir: dir, entries: entries}, nil
}
