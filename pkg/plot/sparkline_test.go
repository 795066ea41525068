package plot

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSparkline(t *testing.T) {
	nan := math.NaN()
	big := make([]float64, 1_000_000)
	for i := range big {
		big[i] = math.Sin(float64(i) / 5000)
	}
	cases := []struct {
		name      string
		ys        []float64
		w, h      int
		label     string
		points    int // polyline points; -1 for no line
		viewBox   string
		maxPoints int
	}{
		{"empty", nil, 0, 0, "sparkline: no data", -1, "0 0 100 20", 0},
		{"all NaN", []float64{nan, math.Inf(1)}, 60, 16, "sparkline: no data", -1, "0 0 60 16", 0},
		{"one value", []float64{3}, 0, 0, "sparkline of 1 value: min 3, max 3, last 3", -1, "0 0 100 20", 0},
		{"constant", []float64{2, 2, 2}, 0, 0, "sparkline of 3 values: min 2, max 2, last 2", 3, "0 0 100 20", 0},
		{"NaN skipped", []float64{1, nan, 3, 2}, 50, 10, "sparkline of 3 values: min 1, max 3, last 2", 3, "0 0 50 10", 0},
		{"big", big, 120, 24, "sparkline of 1000000 values: min -1, max 1, last -0.873", 0, "0 0 120 24", 2*120 + 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := Sparkline(tc.ys, tc.w, tc.h)
			d := parse(t, out)
			root := d.nodes[0].attrs
			assert.Equal(t, "img", root["role"])
			assert.Equal(t, tc.label, root["aria-label"])
			assert.Equal(t, tc.viewBox, root["viewBox"])
			assert.Empty(t, d.text, "no text in a sparkline")
			lines := d.all("polyline")
			switch {
			case tc.points < 0:
				assert.Empty(t, lines)
			case tc.maxPoints > 0:
				require.Len(t, lines, 1)
				assert.LessOrEqual(t, len(strings.Fields(lines[0].attrs["points"])), tc.maxPoints)
				assert.Less(t, len(out), 4000)
			default:
				require.Len(t, lines, 1)
				assert.Len(t, strings.Fields(lines[0].attrs["points"]), tc.points)
			}
			if tc.label != "sparkline: no data" {
				assert.Len(t, d.withClass("plot-spark-last"), 1, "a dot on the last value")
			}
		})
	}
}
