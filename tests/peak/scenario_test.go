package peak

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The deadline peak (see doc.go): who submits how much, when, and how long
// each job runs. It is generated from a fixed seed, so every run submits
// the same peak.
const (
	numUsers   = 100
	maxBurst   = 30
	burstSkew  = 4.0 // burst = 1 + floor(29 * U^burstSkew): most users few jobs, a tenth 20 or more
	orderNoise = 10  // standard deviation, in places, of the heaviest-first arrival order
	peakWindow = 120 * time.Second
	minJobSecs = 3.0
	maxJobSecs = 5.0
	userPrefix = "ferry-peak"
)

// peakUser is one user's burst: when it is submitted, counted from the
// start of the peak, and how long each of its jobs sleeps.
type peakUser struct {
	Name   string        `json:"name"`
	Offset time.Duration `json:"offset_ns"`
	Jobs   []float64     `json:"jobs_s"` // sleep seconds, one decimal
}

type scenario struct {
	// Scale stretches time: job lengths and submission offsets are
	// multiplied by it (1: the benchmark as specified).
	Scale float64    `json:"scale"`
	Users []peakUser `json:"users"`
}

// scaled returns the same peak with every job length and submission
// offset multiplied by f: the same shape, stretched in time, so that
// Slurm's fixed one-minute priority recalculation is relatively shorter.
func (s scenario) scaled(f float64) scenario {
	out := scenario{Scale: s.Scale * f}
	for _, u := range s.Users {
		v := peakUser{Name: u.Name, Offset: time.Duration(float64(u.Offset) * f)}
		for _, d := range u.Jobs {
			v.Jobs = append(v.Jobs, math.Round(d*f*10)/10)
		}
		out.Users = append(out.Users, v)
	}
	return out
}

// window is the time over which the bursts arrive.
func (s scenario) window() time.Duration {
	return time.Duration(float64(peakWindow) * s.Scale).Round(time.Second)
}

func (s scenario) jobs() int {
	n := 0
	for _, u := range s.Users {
		n += len(u.Jobs)
	}
	return n
}

// newScenario draws the burst sizes (skewed: most users submit a few jobs,
// a few submit 20 to 30), orders the users heaviest first with some noise
// (heavy users submit early, light ones trickle in later), spreads the
// bursts evenly over peakWindow in that order, and draws each job's length
// uniformly in [minJobSecs, maxJobSecs]. Users are named in arrival order:
// ferry-peak001 submits first.
func newScenario(seed uint64) scenario {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	sizes := make([]int, numUsers)
	for i := range sizes {
		sizes[i] = 1 + int(float64(maxBurst-1)*math.Pow(r.Float64(), burstSkew))
	}
	sort.Sort(sort.Reverse(sort.IntSlice(sizes)))
	type keyed struct {
		size int
		key  float64
	}
	order := make([]keyed, numUsers)
	for i, n := range sizes {
		order[i] = keyed{n, float64(i) + r.NormFloat64()*orderNoise}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].key < order[j].key })
	s := scenario{Scale: 1}
	for pos, k := range order {
		u := peakUser{
			Name:   fmt.Sprintf("%s%03d", userPrefix, pos+1),
			Offset: time.Duration(float64(peakWindow) * float64(pos) / float64(numUsers-1)),
		}
		for j := 0; j < k.size; j++ {
			d := minJobSecs + r.Float64()*(maxJobSecs-minJobSecs)
			u.Jobs = append(u.Jobs, math.Round(d*10)/10)
		}
		s.Users = append(s.Users, u)
	}
	return s
}

// percentile is the nearest-rank percentile (p in (0, 1]) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

// jain is Jain's fairness index of xs: (Σx)² / (n·Σx²), 1 when all are
// equal, 1/n when one user takes it all; 1 for all zeros.
func jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}

func TestDeadlinePeakScenario(t *testing.T) {
	s := newScenario(scenarioSeed)
	require.Len(t, s.Users, numUsers)
	assert.Equal(t, s, newScenario(scenarioSeed), "the same seed gives the same peak")
	var heavyEarly, heavyLate, light int
	for i, u := range s.Users {
		assert.Equal(t, fmt.Sprintf("ferry-peak%03d", i+1), u.Name)
		require.NotEmpty(t, u.Jobs)
		assert.LessOrEqual(t, len(u.Jobs), maxBurst)
		for _, d := range u.Jobs {
			assert.True(t, d >= minJobSecs && d <= maxJobSecs, "job length %v", d)
		}
		assert.True(t, u.Offset >= 0 && u.Offset <= peakWindow, "offset %v", u.Offset)
		if i > 0 {
			assert.GreaterOrEqual(t, u.Offset, s.Users[i-1].Offset, "users are listed in arrival order")
		}
		switch {
		case len(u.Jobs) >= 20 && i < numUsers/2:
			heavyEarly++
		case len(u.Jobs) >= 20:
			heavyLate++
		case len(u.Jobs) <= 4:
			light++
		}
	}
	assert.Greater(t, heavyEarly, heavyLate, "heavy users submit early")
	assert.GreaterOrEqual(t, light, numUsers/3, "most users submit a few jobs")
	assert.Greater(t, s.jobs(), 500)
	assert.Less(t, s.jobs(), 900, "the peak fits the benchmark's time budget")
}

func TestDeadlinePeakStats(t *testing.T) {
	tests := []struct {
		name          string
		xs            []float64
		p50, p95, max float64
		jain          float64
	}{
		{"equal", []float64{5, 5, 5, 5}, 5, 5, 5, 1},
		{"all zero", []float64{0, 0, 0}, 0, 0, 0, 1},
		{"one takes all", []float64{0, 0, 0, 8}, 0, 8, 8, 0.25},
		{"ramp", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 5, 10, 10, 55.0 * 55 / (10 * 385)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.p50, percentile(tt.xs, 0.50))
			assert.Equal(t, tt.p95, percentile(tt.xs, 0.95))
			assert.Equal(t, tt.max, percentile(tt.xs, 1))
			assert.InDelta(t, tt.jain, jain(tt.xs), 1e-9)
		})
	}
}

func TestDeadlinePeakScaled(t *testing.T) {
	s := newScenario(scenarioSeed)
	x := s.scaled(4)
	assert.Equal(t, 4.0, x.Scale)
	assert.Equal(t, 4*peakWindow, x.window())
	require.Len(t, x.Users, len(s.Users))
	for i, u := range x.Users {
		assert.Equal(t, s.Users[i].Name, u.Name)
		assert.Equal(t, time.Duration(float64(s.Users[i].Offset)*4), u.Offset)
		require.Len(t, u.Jobs, len(s.Users[i].Jobs))
		for j, d := range u.Jobs {
			assert.InDelta(t, 4*s.Users[i].Jobs[j], d, 0.051)
		}
	}
}
