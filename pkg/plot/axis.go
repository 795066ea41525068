package plot

import (
	"math"
	"time"
)

// tick is one labelled axis position, in plot coordinates (log10 of the value
// on a log axis).
type tick struct {
	pos   float64
	label string
}

// axis is a chosen axis range [lo, hi] (plot coordinates, hi > lo) and its
// ticks, all inside the range.
type axis struct {
	lo, hi float64
	ticks  []tick
}

// ladder is a family of evenly stepped tick positions: value(i) is the i-th
// position and index is its continuous inverse.
type ladder interface {
	index(v float64) float64
	value(i int64) float64
}

// linStep is the ladder m × 10^k × i.
type linStep struct {
	m float64
	k int
}

func (s linStep) size() float64 { return s.value(1) }

func (s linStep) index(v float64) float64 { return v / s.size() }

// value divides by a power of ten for negative k so that 3 × 0.1 is the
// double nearest 0.3, not 0.30000000000000004.
func (s linStep) value(i int64) float64 {
	if s.k >= 0 {
		return float64(i) * s.m * math.Pow10(s.k)
	}
	return float64(i) * s.m / math.Pow10(-s.k)
}

const (
	minTicks = 4
	maxTicks = 6
	idxEps   = 1e-9
)

type choice struct {
	lo, hi      float64
	first, last int64
	l           ladder
}

// choose picks, among the candidate ladders, the ticks for data in [lo, hi]:
// between minTicks and maxTicks of them, the axis extended to the next tick
// on either side when that wastes little space. The score favours (in this
// order of weight) little empty space, axis ends on ticks, and five ticks;
// ties go to the earlier candidate, so the choice is deterministic.
func choose(lo, hi float64, cands []ladder) (choice, bool) {
	var best choice
	bestScore := math.Inf(1)
	for _, l := range cands {
		a, b := l.index(lo), l.index(hi)
		if !finite(a) || !finite(b) || b-a > 4*maxTicks || b-a < 1 {
			continue
		}
		loExt, loIn := int64(math.Floor(a+idxEps)), int64(math.Ceil(a-idxEps))
		hiIn, hiExt := int64(math.Floor(b+idxEps)), int64(math.Ceil(b-idxEps))
		for _, extLo := range []bool{true, false} {
			if !extLo && loIn == loExt {
				continue
			}
			for _, extHi := range []bool{true, false} {
				if !extHi && hiIn == hiExt {
					continue
				}
				c := choice{lo: lo, hi: hi, first: loIn, last: hiIn, l: l}
				loose := 0
				if extLo {
					c.first, c.lo = loExt, math.Min(lo, l.value(loExt))
				} else {
					loose++
				}
				if extHi {
					c.last, c.hi = hiExt, math.Max(hi, l.value(hiExt))
				} else {
					loose++
				}
				n := c.last - c.first + 1
				if n < minTicks || n > maxTicks {
					continue
				}
				score := 1 - (hi/2-lo/2)/(c.hi/2-c.lo/2) + 0.1*float64(loose) + 0.05*math.Abs(float64(n-5))
				if score < bestScore-1e-12 {
					best, bestScore = c, score
				}
			}
		}
	}
	return best, bestScore < math.Inf(1)
}

// widen turns an empty or numerically empty range around c into one that
// shows c as the middle of five ticks: c ± 2s for the largest nice step s
// (1, 2 or 5 × 10^k, at most |c|/2) that c is a multiple of, c ± 1 around
// zero, and c ± 10^floor(log10 |c|) when c is not round at all.
func widen(lo, hi float64) (float64, float64) {
	if hi-lo > 1e-12*math.Max(math.Abs(lo), math.Abs(hi)) {
		return lo, hi
	}
	c := lo/2 + hi/2
	if c == 0 {
		return -1, 1
	}
	e := int(math.Floor(math.Log10(math.Abs(c))))
	for k := e; k > e-15; k-- {
		for _, m := range []float64{5, 2, 1} {
			s := linStep{m, k}.size()
			if q := c / s; s <= math.Abs(c)/2 && math.Abs(q-math.Round(q)) < 1e-9*math.Max(1, math.Abs(q)) {
				return c - 2*s, c + 2*s
			}
		}
	}
	m := math.Pow10(e)
	return c - m, c + m
}

// linearAxis chooses nice ticks (1, 2 or 5 × 10^k apart) for data in
// [lo, hi].
func linearAxis(lo, hi float64) axis {
	lo, hi = widen(lo, hi)
	span := hi - lo
	if !finite(span) { // wider than the largest float: ends and middle
		mid := lo/2 + hi/2
		return axis{lo: lo, hi: hi, ticks: []tick{{lo, formatCompact(lo)}, {mid, formatCompact(mid)}, {hi, formatCompact(hi)}}}
	}
	e := int(math.Floor(math.Log10(span)))
	cands := make([]ladder, 0, 12)
	for k := e - 2; k <= e+1; k++ {
		for _, m := range []float64{1, 2, 5} {
			cands = append(cands, linStep{m, k})
		}
	}
	c, ok := choose(lo, hi, cands)
	if !ok {
		return axis{lo: lo, hi: hi, ticks: []tick{{lo, formatCompact(lo)}, {hi, formatCompact(hi)}}}
	}
	step := c.l.(linStep).size()
	maxAbs := math.Max(math.Abs(c.l.value(c.first)), math.Abs(c.l.value(c.last)))
	a := axis{lo: c.lo, hi: c.hi}
	for i := c.first; i <= c.last; i++ {
		v := c.l.value(i)
		a.ticks = append(a.ticks, tick{v, formatTick(v, step, maxAbs)})
	}
	return a
}

// logAxis chooses ticks for data whose log10 lies in [lo, hi]. The range is
// widened to whole decades. Ticks sit at powers of ten, every d decades when
// there are many; a range of one decade also gets 2 and 5, one of two
// decades gets 3 (≈ √10, half way on the log scale).
func logAxis(lo, hi float64) axis {
	a := math.Floor(lo + idxEps)
	b := math.Ceil(hi - idxEps)
	if b <= a {
		a, b = a-1, b+1
	}
	var mults []float64
	d := 1.0
	switch dec := b - a; {
	case dec == 1:
		mults = []float64{1, 2, 5}
	case dec == 2:
		mults = []float64{1, 3}
	default:
		mults = []float64{1}
		for _, s := range []float64{1, 2, 3, 5, 10, 20, 25, 50, 100, 200} {
			d = s
			if math.Ceil(dec/s) <= maxTicks-1 {
				break
			}
		}
		a = math.Floor(a/d) * d
		b = math.Ceil(b/d) * d
	}
	ax := axis{lo: a, hi: b}
	for e := a; e < b-idxEps; e += d {
		for _, m := range mults {
			ax.ticks = append(ax.ticks, tick{e + math.Log10(m), formatPow(m, int(e))})
		}
	}
	ax.ticks = append(ax.ticks, tick{b, formatPow(1, int(b))})
	return ax
}

// fixedStep is the ladder off + i × s (seconds).
type fixedStep struct{ s, off float64 }

func (f fixedStep) index(v float64) float64 { return (v - f.off) / f.s }
func (f fixedStep) value(i int64) float64   { return float64(i)*f.s + f.off }

// monthStep is the ladder of the first of every n-th month, local midnight.
type monthStep struct {
	n   int64
	loc *time.Location
}

func (m monthStep) start(mi int64) float64 {
	y := floorDiv(mi, 12)
	return float64(time.Date(int(1970+y), time.Month(mi-12*y+1), 1, 0, 0, 0, 0, m.loc).Unix())
}

func (m monthStep) index(v float64) float64 {
	t := time.Unix(int64(math.Floor(v)), 0).In(m.loc)
	mi := int64(t.Year()-1970)*12 + int64(t.Month()-1)
	s, e := m.start(mi), m.start(mi+1)
	return (float64(mi) + (v-s)/(e-s)) / float64(m.n)
}

func (m monthStep) value(i int64) float64 { return m.start(i * m.n) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

const (
	minute = 60
	hour   = 3600
	day    = 86400
)

// timeAxis chooses ticks for Unix-second values in [lo, hi], at round clock
// or calendar steps in loc, labelled as times.
func timeAxis(lo, hi float64, loc *time.Location) axis {
	if hi-lo < 1e-9 {
		lo, hi = lo-minute, hi+minute
	}
	if lo < -1e11 || hi > 1e11 { // beyond ±3000 years: not a timestamp
		return linearAxis(lo, hi)
	}
	_, zoff := time.Unix(int64(lo), 0).In(loc).Zone()
	off := -float64(zoff) // local midnight falls on multiples of a day
	var cands []ladder
	for _, s := range []float64{1, 2, 5, 10, 15, 30,
		minute, 2 * minute, 5 * minute, 10 * minute, 15 * minute, 30 * minute,
		hour, 2 * hour, 3 * hour, 6 * hour, 12 * hour, day, 2 * day} {
		cands = append(cands, fixedStep{s, off})
	}
	cands = append(cands, fixedStep{7 * day, off + 4*day}) // Mondays
	for _, n := range []int64{1, 3, 6, 12, 24, 60, 120, 240, 600, 1200} {
		cands = append(cands, monthStep{n, loc})
	}
	c, ok := choose(lo, hi, cands)
	if !ok { // under a few seconds: decimal steps, labelled with milliseconds
		a := linearAxis(lo, hi)
		for i := range a.ticks {
			a.ticks[i].label = unixTime(a.ticks[i].pos, loc).Format("15:04:05.000")
		}
		return a
	}
	var layout string
	switch l := c.l.(type) {
	case fixedStep:
		switch {
		case l.s < minute:
			layout = "15:04:05"
		case l.s < day && hi-lo > day:
			layout = "Jan 2 15:04"
		case l.s < day:
			layout = "15:04"
		default:
			layout = "Jan 2"
		}
	case monthStep:
		layout = "Jan 2006"
		if l.n%12 == 0 {
			layout = "2006"
		}
	}
	a := axis{lo: c.lo, hi: c.hi}
	for i := c.first; i <= c.last; i++ {
		v := c.l.value(i)
		a.ticks = append(a.ticks, tick{v, unixTime(v, loc).Format(layout)})
	}
	return a
}

func unixTime(v float64, loc *time.Location) time.Time {
	sec := math.Floor(v)
	// A float near 1.7e9 holds fractions to about 0.2 µs: round to µs so
	// 0.1 s past the second does not print as .099.
	return time.Unix(int64(sec), int64(math.Round((v-sec)*1e6))*1e3).In(loc)
}
