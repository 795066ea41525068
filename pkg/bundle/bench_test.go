package bundle

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// TestPackVsTarGz compares Pack with `tar czf` on a generated tree of mixed
// files. It runs only with FERRY_BENCH=1; FERRY_BENCH_MB sets the size
// (default 1024).
//
//	FERRY_BENCH=1 go test -run TestPackVsTarGz -v -timeout 30m ./pkg/bundle/
func TestPackVsTarGz(t *testing.T) {
	if os.Getenv("FERRY_BENCH") != "1" {
		t.Skip("set FERRY_BENCH=1 to run the packing benchmark")
	}
	mb := 1024
	if s := os.Getenv("FERRY_BENCH_MB"); s != "" {
		var err error
		mb, err = strconv.Atoi(s)
		require.NoError(t, err, "FERRY_BENCH_MB")
	}
	tarPath, err := exec.LookPath("tar")
	require.NoError(t, err)

	work := t.TempDir()
	src := filepath.Join(work, "src")
	start := time.Now()
	content, files := genTree(t, src, int64(mb)<<20)
	t.Logf("generated %d files, %s in %s", files, FormatBytes(content), time.Since(start).Round(time.Millisecond))

	levels := []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault}
	if s := os.Getenv("FERRY_BENCH_LEVEL"); s != "" {
		ok, l := zstd.EncoderLevelFromString(s)
		require.True(t, ok, "FERRY_BENCH_LEVEL")
		levels = []zstd.EncoderLevel{l}
	}
	type result struct {
		rate float64
		size int64
	}
	packs := map[zstd.EncoderLevel]result{}
	for _, level := range levels {
		out := filepath.Join(work, "bundle-"+level.String()+".tar.zst")
		f, err := os.Create(out)
		require.NoError(t, err)
		start = time.Now()
		info, err := Pack(context.Background(), src, f, Options{Level: level})
		require.NoError(t, err)
		require.NoError(t, f.Close())
		d := time.Since(start)
		packs[level] = result{float64(content) / 1e6 / d.Seconds(), info.Size}
		t.Logf("pack %s: %s, %.0f MB/s, %s compressed", level, d.Round(time.Millisecond), packs[level].rate, FormatBytes(info.Size))
	}

	out := filepath.Join(work, "tar.tgz")
	start = time.Now()
	cmd := exec.Command(tarPath, "czf", out, "-C", src, ".")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	d := time.Since(start)
	fi, err := os.Stat(out)
	require.NoError(t, err)
	tarRate := float64(content) / 1e6 / d.Seconds()
	t.Logf("tar czf: %s, %.0f MB/s, %s compressed", d.Round(time.Millisecond), tarRate, FormatBytes(fi.Size()))

	for _, level := range levels {
		r := packs[level]
		fmt.Printf("BENCH pack: %s of mixed files: pack (%s): %.0f MB/s, tar czf: %.0f MB/s, ratio: %.1f; compressed: %s vs %s\n",
			FormatBytes(content), level, r.rate, tarRate, r.rate/tarRate, FormatBytes(r.size), FormatBytes(fi.Size()))
	}
}

// genTree writes about size bytes under dir: 60% text-like (compressible),
// 30% random, 10% small files. It returns the bytes and files written.
func genTree(t testing.TB, dir string, size int64) (int64, int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 4096)
	for i := range words {
		w := make([]byte, 2+rng.IntN(10))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = w
	}
	var total int64
	files := 0
	write := func(rel string, n int64, fill func(w *bufio.Writer, n int64)) {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		f, err := os.Create(p)
		require.NoError(t, err)
		bw := bufio.NewWriterSize(f, 1<<20)
		fill(bw, n)
		require.NoError(t, bw.Flush())
		require.NoError(t, f.Close())
		total += n
		files++
	}
	text := func(w *bufio.Writer, n int64) {
		line := make([]byte, 0, 256)
		for n > 0 {
			line = line[:0]
			for len(line) < 60+rng.IntN(60) {
				line = append(line, words[rng.IntN(64)+rng.IntN(len(words)-64)*rng.IntN(2)]...)
				line = append(line, ' ')
			}
			line[len(line)-1] = '\n'
			k := min(int64(len(line)), n)
			_, _ = w.Write(line[:k])
			n -= k
		}
	}
	random := func(w *bufio.Writer, n int64) {
		var b [4096]byte
		for n > 0 {
			for i := 0; i < len(b); i += 8 {
				binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
			}
			k := min(int64(len(b)), n)
			_, _ = w.Write(b[:k])
			n -= k
		}
	}
	budget := func(frac, n int64) int64 { return min(n, size*frac/10-total) }
	for i := 0; total < size*6/10; i++ {
		write(fmt.Sprintf("src/pkg%02d/file%03d.txt", i%20, i), budget(6, int64(1+rng.IntN(8))<<20), text)
	}
	for i := 0; total < size*9/10; i++ {
		write(fmt.Sprintf("data/blob%03d.bin", i), budget(9, int64(10+rng.IntN(40))<<20), random)
	}
	for i := 0; total < size; i++ {
		fill := text
		if i%3 == 0 {
			fill = random
		}
		write(fmt.Sprintf("small/d%03d/f%05d", i%300, i), budget(10, int64(1024+rng.IntN(15*1024))), fill)
	}
	return total, files
}

// BenchmarkPack packs a generated 128 MiB tree of mixed files to a
// counting writer.
func BenchmarkPack(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src")
	content, _ := genTree(b, src, 128<<20)
	b.SetBytes(content)
	b.ResetTimer()
	for b.Loop() {
		_, err := Pack(context.Background(), src, io.Discard, Options{})
		require.NoError(b, err)
	}
}
