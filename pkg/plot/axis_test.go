package plot

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func labels(a axis) []string {
	out := make([]string, len(a.ticks))
	for i, t := range a.ticks {
		out[i] = t.label
	}
	return out
}

func TestLinearTicks(t *testing.T) {
	cases := []struct {
		lo, hi float64
		want   []string
	}{
		{0, 1, []string{"0", "0.2", "0.4", "0.6", "0.8", "1"}},
		{0, 10.5, []string{"0", "2", "4", "6", "8", "10"}},
		{0, 1000, []string{"0", "200", "400", "600", "800", "1k"}},
		{-50, 50, []string{"-40", "-20", "0", "20", "40"}},
		{0.1, 0.3, []string{"0.1", "0.15", "0.2", "0.25", "0.3"}},
		{1, 99, []string{"0", "20", "40", "60", "80", "100"}},
		{0, 1.2e6, []string{"0", "500k", "1M", "1.5M"}},
		{1e-5, 5e-5, []string{"1e-05", "2e-05", "3e-05", "4e-05", "5e-05"}},
		{0, 3e-4, []string{"0", "0.0001", "0.0002", "0.0003"}},
		{1200, 1800, []string{"1.2k", "1.4k", "1.6k", "1.8k"}},
		{1000, 2000, []string{"1k", "1.2k", "1.4k", "1.6k", "1.8k", "2k"}},
		{-3, -1, []string{"-3", "-2.5", "-2", "-1.5", "-1"}},
		{3e9, 7e9, []string{"3G", "4G", "5G", "6G", "7G"}},
		{1e15, 5e15, []string{"1e+15", "2e+15", "3e+15", "4e+15", "5e+15"}},
		// Constant values: the value is the middle tick.
		{42, 42, []string{"38", "40", "42", "44", "46"}},
		{5, 5, []string{"3", "4", "5", "6", "7"}},
		{0, 0, []string{"-1", "-0.5", "0", "0.5", "1"}},
		{0.25, 0.25, []string{"0.15", "0.2", "0.25", "0.3", "0.35"}},
		{-1000, -1000, []string{"-2k", "-1.5k", "-1k", "-500", "0"}},
	}
	for _, tc := range cases {
		a := linearAxis(tc.lo, tc.hi)
		assert.Equal(t, tc.want, labels(a), "[%g, %g]", tc.lo, tc.hi)
		checkAxis(t, a, tc.lo, tc.hi)
	}
}

// checkAxis asserts what every linear axis promises: 4 to 6 ticks, evenly
// spaced at 1, 2 or 5 × 10^k, inside the axis range, which holds the data;
// distinct labels.
func checkAxis(t *testing.T, a axis, lo, hi float64) {
	t.Helper()
	require.GreaterOrEqual(t, len(a.ticks), 4, "[%g, %g]: %v", lo, hi, labels(a))
	require.LessOrEqual(t, len(a.ticks), 6, "[%g, %g]: %v", lo, hi, labels(a))
	assert.LessOrEqual(t, a.lo, lo)
	assert.GreaterOrEqual(t, a.hi, hi)
	step := a.ticks[1].pos - a.ticks[0].pos
	mant := step / math.Pow10(int(math.Floor(math.Log10(step)+1e-9)))
	assert.Contains(t, []float64{1, 2, 5}, math.Round(mant*1e6)/1e6, "[%g, %g]: step %g", lo, hi, step)
	seen := map[string]bool{}
	for i, tk := range a.ticks {
		assert.GreaterOrEqual(t, tk.pos, a.lo-step*1e-9)
		assert.LessOrEqual(t, tk.pos, a.hi+step*1e-9)
		if i > 0 {
			assert.InDelta(t, step, tk.pos-a.ticks[i-1].pos, step*1e-6)
		}
		assert.False(t, seen[tk.label], "duplicate label %q in %v", tk.label, labels(a))
		seen[tk.label] = true
	}
}

func TestLinearTicksOverRandomRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		mag := math.Pow10(r.IntN(30) - 15)
		lo := (r.Float64()*2 - 1) * mag * 10
		hi := lo + r.Float64()*mag*r.Float64()*10
		checkAxis(t, linearAxis(lo, hi), lo, hi)
		if t.Failed() {
			return
		}
	}
}

func TestLogTicks(t *testing.T) {
	cases := []struct {
		name   string
		lo, hi float64 // data values, not logs
		want   []string
	}{
		{"three decades", 1, 1000, []string{"1", "10", "100", "1k"}},
		{"inside decades", 3, 700, []string{"1", "10", "100", "1k"}},
		{"one decade: 1-2-5", 12, 80, []string{"10", "20", "50", "100"}},
		{"two decades: 1-3", 0.2, 8, []string{"0.1", "0.3", "1", "3", "10"}},
		{"one value", 100, 100, []string{"10", "30", "100", "300", "1k"}},
		{"small", 1e-6, 1e-2, []string{"1e-06", "1e-05", "0.0001", "0.001", "0.01"}},
		{"wide: every other decade", 1, 1e9, []string{"1", "100", "10k", "1M", "100M", "10G"}},
		{"huge", 1e-300, 1e300, []string{"1e-400", "1e-200", "1", "1e+200", "1e+400"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := logAxis(math.Log10(tc.lo), math.Log10(tc.hi))
			assert.Equal(t, tc.want, labels(a))
			assert.LessOrEqual(t, a.lo, math.Log10(tc.lo))
			assert.GreaterOrEqual(t, a.hi, math.Log10(tc.hi))
			assert.LessOrEqual(t, len(a.ticks), 7)
			assert.GreaterOrEqual(t, len(a.ticks), 3)
			for _, tk := range a.ticks {
				assert.True(t, tk.pos >= a.lo-1e-9 && tk.pos <= a.hi+1e-9, "tick %v outside [%g, %g]", tk, a.lo, a.hi)
			}
		})
	}
}

func TestTimeTicks(t *testing.T) {
	base := float64(time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC).Unix())
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	cases := []struct {
		name string
		span float64
		loc  *time.Location
		want []string
	}{
		{"seconds", 40, time.UTC, []string{"09:26:50", "09:27:00", "09:27:10", "09:27:20", "09:27:30"}},
		{"an hour", 3600, time.UTC, []string{"09:30", "09:45", "10:00", "10:15", "10:30"}},
		{"a day", 24 * 3600, time.UTC, []string{"12:00", "18:00", "00:00", "06:00", "12:00"}},
		{"a day in Berlin", 24 * 3600, berlin, []string{"12:00", "18:00", "00:00", "06:00", "12:00"}},
		{"three days", 3 * 24 * 3600, time.UTC, []string{"Mar 14 12:00", "Mar 15 00:00", "Mar 15 12:00", "Mar 16 00:00", "Mar 16 12:00", "Mar 17 00:00"}},
		{"a month", 30 * 24 * 3600, time.UTC, []string{"Mar 17", "Mar 24", "Mar 31", "Apr 7", "Apr 14"}},
		{"a year", 365 * 24 * 3600, time.UTC, []string{"Apr 2025", "Jul 2025", "Oct 2025", "Jan 2026", "Apr 2026"}},
		{"ten years", 10 * 365 * 24 * 3600, time.UTC, []string{"2026", "2028", "2030", "2032", "2034"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := timeAxis(base, base+tc.span, tc.loc)
			assert.Equal(t, tc.want, labels(a))
			assert.LessOrEqual(t, a.lo, base)
			assert.GreaterOrEqual(t, a.hi, base+tc.span)
		})
	}
	t.Run("local midnight in the location", func(t *testing.T) {
		a := timeAxis(base, base+3*24*3600, berlin)
		assert.Equal(t, "Mar 15 00:00", a.ticks[1].label)
		assert.Equal(t, time.Date(2025, 3, 14, 23, 0, 0, 0, time.UTC), time.Unix(int64(a.ticks[1].pos), 0).UTC())
	})
	t.Run("sub-second", func(t *testing.T) {
		a := timeAxis(base, base+0.5, time.UTC)
		assert.Equal(t, "09:26:53.100", a.ticks[1].label)
	})
}

func TestFormatting(t *testing.T) {
	ticks := []struct {
		v, step, maxAbs float64
		want            string
	}{
		{0, 1, 5, "0"},
		{1e-17, 0.1, 1, "0"},
		{0.25, 0.05, 0.3, "0.25"},
		{0.2, 0.05, 0.3, "0.2"},
		{1200, 200, 2000, "1.2k"},
		{1000, 200, 2000, "1k"},
		{800, 200, 2000, "800"},
		{-1500, 500, 2000, "-1.5k"},
		{100200, 200, 100400, "100.2k"},
		{3e-5, 1e-5, 5e-5, "3e-05"},
		{1.5e-5, 5e-6, 5e-5, "1.5e-05"},
		{2.5e6, 5e5, 3e6, "2.5M"},
		{7e12, 1e12, 8e12, "7T"},
	}
	for _, tc := range ticks {
		assert.Equal(t, tc.want, formatTick(tc.v, tc.step, tc.maxAbs), "formatTick(%g, %g)", tc.v, tc.step)
	}
	compact := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.25, "0.25"}, {1234, "1.23k"}, {999.9, "1k"}, {-1.2e6, "-1.2M"},
		{3e-5, "3e-05"}, {0.001, "0.001"}, {12.345, "12.3"}, {2e15, "2e+15"}, {math.MaxFloat64, "1.8e+308"},
	}
	for _, tc := range compact {
		assert.Equal(t, tc.want, formatCompact(tc.v), "formatCompact(%g)", tc.v)
	}
}
