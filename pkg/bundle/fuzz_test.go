package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// FuzzUnpack feeds Unpack valid and hostile archives. The property: it
// never panics, never creates anything beside dest, and leaves no symlink
// in dest that resolves outside it.
//
// data is a tar stream whose header checksums are fixed up and which is
// then zstd-compressed before Unpack sees it, so mutations explore tar
// structure rather than die on a checksum; with raw set, data goes to
// Unpack as is, exercising the zstd decoder.
//
//	go test -run XXX -fuzz=FuzzUnpack -fuzztime=60s -fuzzminimizetime=5s ./pkg/bundle/
//
// A short -fuzzminimizetime matters: coverage through sync.Pool-using code
// is a little flaky, and with the default 60s the coordinator spends most
// of the run minimizing inputs that turn out not to be new.
func FuzzUnpack(f *testing.F) {
	// Valid bundles, decompressed to their tar stream.
	src := f.TempDir()
	writeTree(f, src, projectTree...)
	bundle, _ := pack(f, src, Options{})
	f.Add(decompress(f, bundle), false)
	f.Add(bundle, true)
	f.Add(rawTar(f, dirEntry("a/"), regEntry("a/b", "hello"), linkEntry("a/c", "b"), linkEntry("d", "a/c")), false)

	// Hostile ones, aimed at a sibling of dest.
	for _, tt := range hostileCases("../sibling") {
		f.Add(rawTar(f, tt.entries...), false)
	}
	f.Add(rawTar(f, linkEntry("s", "."), linkEntry("l", "s/.."), regEntry("l/sibling/x", "x")), false)
	f.Add(rawTar(f, dirEntry("a/"), linkEntry("a/up", ".."), regEntry("a/up/x", "x")), false)
	f.Add(rawTar(f, tarEntry{name: "x", typ: tar.TypeGNUSparse}), false)
	f.Add([]byte("garbage"), true)

	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		s := newSandbox(t)
		in := data
		if !raw {
			in = compress(t, fixTarChecksums(data))
		}
		_ = Unpack(context.Background(), bytes.NewReader(in), s.dest,
			UnpackOptions{MaxBytes: 1 << 20, MaxEntries: 1000})
		if bad := s.escapes(t); bad != "" {
			t.Fatalf("unpack escaped dest: %s", bad)
		}
	})
}

// fixTarChecksums returns a copy of b with the checksum of every header
// block it can find recomputed. Headers are found by following each one's
// octal size field; a size that does not parse counts as 0.
func fixTarChecksums(b []byte) []byte {
	b = bytes.Clone(b)
	for off := 0; off+512 <= len(b); {
		h := b[off : off+512]
		off += 512
		if bytes.Count(h, []byte{0}) == 512 {
			continue
		}
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		size, err := strconv.ParseInt(strings.TrimRight(strings.TrimSpace(string(h[124:136])), "\x00"), 8, 64)
		if err != nil || size < 0 || size > int64(len(b)) {
			size = 0
		}
		off += int((size + 511) / 512 * 512)
	}
	return b
}

func decompress(t testing.TB, b []byte) []byte {
	t.Helper()
	dec, err := zstd.NewReader(nil)
	require.NoError(t, err)
	defer dec.Close()
	out, err := dec.DecodeAll(b, nil)
	require.NoError(t, err)
	return out
}

// The property checker must see the escapes it is there to catch.
func TestSandboxDetectsEscapes(t *testing.T) {
	s := newSandbox(t)
	require.Empty(t, s.escapes(t))
	writeTree(t, s.dest, node{path: "s", link: "."}, node{path: "l", link: "s/.."}, node{path: "ok", link: "s/x"})
	writeTree(t, s.sibling, node{path: "planted", content: "x"})
	writeTree(t, s.parent, node{path: "beside", content: "x"})
	require.Equal(t, "created beside beside dest; created sibling/planted; symlink l resolves to "+s.parent, s.escapes(t))
}
