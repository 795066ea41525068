package plot

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDownsample(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	walk := line(100_000, func(i int) Point { return Point{float64(i), 0} })
	for i := 1; i < len(walk); i++ {
		walk[i].Y = walk[i-1].Y + r.NormFloat64()
	}
	cases := []struct {
		name    string
		pts     []Point
		buckets int
	}{
		{"random walk", walk, 200},
		{"few buckets", walk, 1},
		{"just over the limit", walk[:21], 10},
		{"spikes", line(10_000, func(i int) Point {
			y := 0.0
			if i == 4321 {
				y = 1e9
			}
			if i == 8765 {
				y = -1e9
			}
			return Point{float64(i), y}
		}), 50},
		{"extremes at the ends", line(1000, func(i int) Point { return Point{float64(i), float64(i)} }), 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := Downsample(tc.pts, tc.buckets)
			assert.LessOrEqual(t, len(out), 2*tc.buckets+2)
			assert.Equal(t, tc.pts[0], out[0], "first point kept")
			assert.Equal(t, tc.pts[len(tc.pts)-1], out[len(out)-1], "last point kept")
			lo, hi := extremes(tc.pts)
			olo, ohi := extremes(out)
			assert.Equal(t, lo, olo, "minimum kept")
			assert.Equal(t, hi, ohi, "maximum kept")
			for i := 1; i < len(out); i++ {
				require.Less(t, out[i-1].X, out[i].X, "X order kept, no point twice")
			}
		})
	}
}

func extremes(pts []Point) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo, hi = math.Min(lo, p.Y), math.Max(hi, p.Y)
	}
	return lo, hi
}

func TestDownsampleLeavesSmallInputAlone(t *testing.T) {
	pts := line(20, func(i int) Point { return Point{float64(i), float64(i % 3)} })
	cases := []struct {
		name    string
		pts     []Point
		buckets int
	}{
		{"at the limit", pts, 10},
		{"under the limit", pts[:5], 10},
		{"zero buckets", pts, 0},
		{"negative buckets", pts, -1},
		{"empty", nil, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := Downsample(tc.pts, tc.buckets)
			assert.Equal(t, tc.pts, out)
			if len(tc.pts) > 0 {
				assert.Same(t, &tc.pts[0], &out[0], "the same slice, not a copy")
			}
		})
	}
}

func TestDownsampleKeepsEachBucketsMinAndMaxInOrder(t *testing.T) {
	// 2 buckets over the 8 inner points: [1..4] and [5..8].
	ys := []float64{0, 5, 9, 1, 3, 2, math.NaN(), 8, -4, 7}
	pts := make([]Point, len(ys))
	for i, y := range ys {
		pts[i] = Point{float64(i), y}
	}
	out := Downsample(pts, 2)
	var xs []float64
	for _, p := range out {
		xs = append(xs, p.X)
	}
	// Bucket 1: max 9 at 2, min 1 at 3. Bucket 2 (NaN skipped): max 8 at 7, min -4 at 8.
	assert.Equal(t, []float64{0, 2, 3, 7, 8, 9}, xs)
}
