package plot

import (
	"cmp"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Point is one data point.
type Point struct{ X, Y float64 }

// Series is one line (Lines) or set of markers (Scatter).
type Series struct {
	Name   string // legend label (escaped); unnamed series are "series N"
	Points []Point
	// Labels are per-point tooltips for Scatter, parallel to Points
	// (optional; a shorter slice labels only the first points). Each becomes
	// the <title> of its marker. Lines ignores them.
	Labels    []string
	Highlight bool   // drawn thicker, in the accent colour, on top (e.g. the best run)
	Href      string // link for the legend entry; only relative or http(s) URLs, anything else is dropped
}

// Options shape a chart. The zero value is a 640×240 linear chart.
type Options struct {
	Width, Height         int // px; defaults 640×240, at least 120×80
	Title, XLabel, YLabel string
	// LogX and LogY use log scales; points with a non-positive coordinate on
	// a log axis are dropped and a note under the chart says how many.
	LogX, LogY bool
	// MaxPoints bounds the points drawn per series (default 400, at least
	// 4); longer series are reduced with Downsample.
	MaxPoints int
	// XTime says X values are Unix seconds: ticks fall on round times and are
	// labelled as times in Location (UTC when nil). Ignored with LogX.
	XTime    bool
	Location *time.Location
}

const (
	defaultWidth     = 640
	defaultHeight    = 240
	defaultMaxPoints = 400
)

// palette holds the series colours (slot i%8, class "s<i%8>"); accent is
// the highlighted series' colour.
var palette = [...]string{"#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#b07aa1", "#9c755f", "#bab0ac"}

const (
	accent    = "#e15759"
	textColor = "#333"
	mutedText = "#666"
	gridColor = "#e6e6e6"
	axisColor = "#999"
	fontSize  = 11.0
	tickFont  = 10.0
)

func (o Options) normalized() Options {
	if o.Width <= 0 {
		o.Width = defaultWidth
	}
	if o.Height <= 0 {
		o.Height = defaultHeight
	}
	o.Width = min(max(o.Width, 120), 8192)
	o.Height = min(max(o.Height, 80), 8192)
	if o.MaxPoints <= 0 {
		o.MaxPoints = defaultMaxPoints
	}
	o.MaxPoints = max(o.MaxPoints, 4)
	if o.Location == nil {
		o.Location = time.UTC
	}
	return o
}

type kind int

const (
	lineChart kind = iota
	scatterChart
)

func (k kind) String() string {
	if k == scatterChart {
		return "scatter plot"
	}
	return "line chart"
}

// Lines renders a line chart: one polyline per series, in X order, with a
// legend and axes with nice ticks. A series with a single point is drawn as
// a dot.
func Lines(series []Series, o Options) template.HTML { return render(lineChart, series, o) }

// Scatter renders markers only. A series with Labels gets one <circle> per
// point carrying its label as a <title> tooltip; one without is drawn as a
// single compact path. Series longer than MaxPoints are thinned with
// Downsample and the note says how many points are shown.
func Scatter(series []Series, o Options) template.HTML { return render(scatterChart, series, o) }

// prepared is a series ready to draw: cleaned, in plot coordinates (log10
// on log axes), sorted by X and downsampled.
type prepared struct {
	slot   int // palette slot
	name   string
	named  bool // Name was given (name is "series N" otherwise)
	href   string
	hl     bool
	pts    []Point
	labels []string // parallel to pts, nil when the series has none
}

func (p *prepared) color() string {
	if p.hl {
		return accent
	}
	return palette[p.slot]
}

func (p *prepared) class(base string) string {
	c := base + " s" + strconv.Itoa(p.slot)
	if p.hl {
		c += " hl"
	}
	return c
}

// tally counts what was left out, for the note under the chart.
type tally struct {
	nonFinite, nonPositive int
	kept, shown            int // points after cleaning, and after downsampling
}

func prepare(series []Series, o Options, k kind) ([]prepared, tally) {
	var t tally
	ps := make([]prepared, len(series))
	for i, s := range series {
		p := prepared{slot: i % len(palette), name: s.Name, named: s.Name != "", href: safeHref(s.Href), hl: s.Highlight}
		if p.name == "" {
			p.name = "series " + strconv.Itoa(i+1)
		}
		withLabels := k == scatterChart && len(s.Labels) > 0
		pts := make([]Point, 0, len(s.Points))
		var labels []string
		for j, pt := range s.Points {
			if !finite(pt.X) || !finite(pt.Y) {
				t.nonFinite++
				continue
			}
			if (o.LogX && pt.X <= 0) || (o.LogY && pt.Y <= 0) {
				t.nonPositive++
				continue
			}
			if o.LogX {
				pt.X = math.Log10(pt.X)
			}
			if o.LogY {
				pt.Y = math.Log10(pt.Y)
			}
			pts = append(pts, pt)
			if withLabels {
				l := ""
				if j < len(s.Labels) {
					l = s.Labels[j]
				}
				labels = append(labels, l)
			}
		}
		pts, labels = sortByX(pts, labels)
		t.kept += len(pts)
		if len(pts) > o.MaxPoints {
			idx := downsampleIdx(pts, (o.MaxPoints-2)/2)
			np := make([]Point, len(idx))
			var nl []string
			if labels != nil {
				nl = make([]string, len(idx))
			}
			for n, j := range idx {
				np[n] = pts[j]
				if labels != nil {
					nl[n] = labels[j]
				}
			}
			pts, labels = np, nl
		}
		t.shown += len(pts)
		p.pts, p.labels = pts, labels
		ps[i] = p
	}
	return ps, t
}

// sortByX sorts pts (and labels alongside) by X, stably; already sorted
// input, the common case, costs one pass.
func sortByX(pts []Point, labels []string) ([]Point, []string) {
	if slices.IsSortedFunc(pts, func(a, b Point) int { return cmp.Compare(a.X, b.X) }) {
		return pts, labels
	}
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	// Ties broken by position: stable, at the speed of an unstable sort.
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmp.Compare(pts[a].X, pts[b].X); c != 0 {
			return c
		}
		return a - b
	})
	np := make([]Point, len(pts))
	var nl []string
	if labels != nil {
		nl = make([]string, len(labels))
	}
	for n, j := range idx {
		np[n] = pts[j]
		if labels != nil {
			nl[n] = labels[j]
		}
	}
	return np, nl
}

func (t tally) note(k kind) string {
	var parts []string
	if t.nonFinite > 0 {
		parts = append(parts, plural(t.nonFinite, "non-finite value", "non-finite values")+" skipped")
	}
	if t.nonPositive > 0 {
		parts = append(parts, plural(t.nonPositive, "non-positive value", "non-positive values")+" dropped (log scale)")
	}
	if k == scatterChart && t.shown < t.kept {
		parts = append(parts, "showing "+strconv.Itoa(t.shown)+" of "+strconv.Itoa(t.kept)+" points")
	}
	return strings.Join(parts, "; ")
}

func ariaLabel(k kind, o Options, ps []prepared, empty bool) string {
	s := k.String()
	if o.Title != "" {
		s = o.Title + " (" + s + ")"
	}
	if len(ps) > 0 {
		names := make([]string, 0, 6)
		for i, p := range ps {
			if i == 5 {
				names = append(names, "and "+strconv.Itoa(len(ps)-5)+" more")
				break
			}
			names = append(names, p.name)
		}
		s += " of " + strings.Join(names, ", ")
	}
	if empty {
		s += ": no data"
	}
	return s
}

func openSVG(w *svgWriter, class string, width, height int, label string) {
	ws, hs := strconv.Itoa(width), strconv.Itoa(height)
	w.raw(`<svg xmlns="http://www.w3.org/2000/svg" class="`, class, `" viewBox="0 0 `, ws, " ", hs,
		`" width="`, ws, `" height="`, hs, `" role="img" aria-label="`)
	w.text(label)
	w.raw(`" font-family="system-ui,sans-serif" font-size="11">`)
}

func render(k kind, series []Series, o Options) template.HTML {
	o = o.normalized()
	ps, t := prepare(series, o, k)
	note := t.note(k)
	size := 2048 + 24*t.shown
	for _, p := range ps {
		for _, l := range p.labels {
			size += 48 + len(l)
		}
	}
	w := svgWriter{b: make([]byte, 0, size)}
	W, H := float64(o.Width), float64(o.Height)
	openSVG(&w, "plot", o.Width, o.Height, ariaLabel(k, o, ps, t.shown == 0))
	if o.Title != "" {
		w.raw(`<text class="plot-title"`)
		w.attr("x", W/2)
		w.raw(` y="15" text-anchor="middle" font-size="13" font-weight="600" fill="`, textColor, `">`)
		w.text(o.Title)
		w.raw(`</text>`)
	}
	if t.shown == 0 {
		w.raw(`<text class="plot-empty"`)
		w.attr("x", W/2)
		w.attr("y", H/2)
		w.raw(` text-anchor="middle" fill="`, mutedText, `">no data</text>`)
		writeNote(&w, note, W, H)
		w.raw(`</svg>`)
		return w.html()
	}

	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range ps {
		for _, pt := range p.pts {
			xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
			ymin, ymax = math.Min(ymin, pt.Y), math.Max(ymax, pt.Y)
		}
	}
	var xa, ya axis
	switch {
	case o.LogX:
		xa = logAxis(xmin, xmax)
	case o.XTime:
		xa = timeAxis(xmin, xmax, o.Location)
	default:
		xa = linearAxis(xmin, xmax)
	}
	if o.LogY {
		ya = logAxis(ymin, ymax)
	} else {
		ya = linearAxis(ymin, ymax)
	}

	// Layout, top to bottom: title, legend, plot, x tick labels, x label,
	// note; left to right: y label, y tick labels, plot.
	top := 6.0
	if o.Title != "" {
		top = 24
	}
	leg := layoutLegend(ps, W)
	legendTop := top
	top += float64(leg.rows)*legendRowH + 6
	yLabW := 0.0
	for _, tk := range ya.ticks {
		yLabW = math.Max(yLabW, textWidth(tk.label, tickFont))
	}
	left := 8 + yLabW + 5
	if o.YLabel != "" {
		left += 16
	}
	right := 10.0
	if n := len(xa.ticks); n > 0 {
		right = math.Max(right, textWidth(xa.ticks[n-1].label, tickFont)/2+4)
	}
	bottom := 20.0
	if o.XLabel != "" {
		bottom += 15
	}
	if note != "" {
		bottom += 14
	}
	f := frame{left: left, top: top, w: math.Max(W-left-right, 10), h: math.Max(H-top-bottom, 10), xa: xa, ya: ya}

	writeAxes(&w, f, o)
	writeLegend(&w, leg, legendTop)
	for pass := 0; pass < 2; pass++ { // highlighted series last, on top
		for i := range ps {
			if p := &ps[i]; p.hl == (pass == 1) && len(p.pts) > 0 {
				if k == scatterChart {
					writeMarkers(&w, f, p)
				} else {
					writeLine(&w, f, p)
				}
			}
		}
	}
	writeNote(&w, note, W, H)
	w.raw(`</svg>`)
	return w.html()
}

// frame maps plot coordinates to px inside the plot area.
type frame struct {
	left, top, w, h float64
	xa, ya          axis
}

func (f frame) px(x float64) float64 { return f.left + frac(x, f.xa)*f.w }
func (f frame) py(y float64) float64 { return f.top + f.h - frac(y, f.ya)*f.h }

// frac is v's place in the axis range, 0 to 1; halving first keeps it finite
// for ranges wider than the largest float.
func frac(v float64, a axis) float64 { return (v/2 - a.lo/2) / (a.hi/2 - a.lo/2) }

func writeAxes(w *svgWriter, f frame, o Options) {
	right, bottom := f.left+f.w, f.top+f.h
	w.raw(`<path class="plot-grid" fill="none" stroke="`, gridColor, `" d="`)
	for _, tk := range f.ya.ticks {
		w.raw("M")
		w.num(f.left)
		w.raw(" ")
		w.num(f.py(tk.pos))
		w.raw("H")
		w.num(right)
	}
	for _, tk := range f.xa.ticks {
		w.raw("M")
		w.num(f.px(tk.pos))
		w.raw(" ")
		w.num(f.top)
		w.raw("V")
		w.num(bottom)
	}
	w.raw(`"/><path class="plot-axis" fill="none" stroke="`, axisColor, `" d="M`)
	w.num(f.left)
	w.raw(" ")
	w.num(f.top)
	w.raw("V")
	w.num(bottom)
	w.raw("H")
	w.num(right)
	w.raw(`"/>`)

	w.raw(`<g class="plot-tick" font-size="10" fill="`, mutedText, `"><g text-anchor="end">`)
	for _, tk := range f.ya.ticks {
		w.raw("<text")
		w.attr("x", f.left-5)
		w.attr("y", f.py(tk.pos)+3.5)
		w.raw(">")
		w.text(tk.label)
		w.raw("</text>")
	}
	w.raw(`</g><g text-anchor="middle">`)
	// Label every other tick when labels would collide.
	every := 1
	if n := len(f.xa.ticks); n > 1 {
		widest := 0.0
		for _, tk := range f.xa.ticks {
			widest = math.Max(widest, textWidth(tk.label, tickFont))
		}
		if gap := f.px(f.xa.ticks[1].pos) - f.px(f.xa.ticks[0].pos); widest+6 > gap {
			every = 2
		}
	}
	for i, tk := range f.xa.ticks {
		if i%every != 0 {
			continue
		}
		w.raw("<text")
		w.attr("x", f.px(tk.pos))
		w.attr("y", bottom+13)
		w.raw(">")
		w.text(tk.label)
		w.raw("</text>")
	}
	w.raw(`</g></g>`)

	if o.XLabel != "" {
		w.raw(`<text class="plot-label"`)
		w.attr("x", f.left+f.w/2)
		w.attr("y", bottom+28)
		w.raw(` text-anchor="middle" fill="`, textColor, `">`)
		w.text(o.XLabel)
		w.raw(`</text>`)
	}
	if o.YLabel != "" {
		w.raw(`<text class="plot-label" transform="rotate(-90)"`)
		w.attr("x", -(f.top + f.h/2))
		w.raw(` y="14" text-anchor="middle" fill="`, textColor, `">`)
		w.text(o.YLabel)
		w.raw(`</text>`)
	}
}

func writeLine(w *svgWriter, f frame, p *prepared) {
	if len(p.pts) == 1 {
		w.raw(`<circle class="`, p.class("plot-line"), `" color="`, p.color(), `" fill="currentColor"`)
		w.attr("cx", f.px(p.pts[0].X))
		w.attr("cy", f.py(p.pts[0].Y))
		w.raw(` r="3"/>`)
		return
	}
	width := "1.5"
	if p.hl {
		width = "3"
	}
	w.raw(`<polyline class="`, p.class("plot-line"), `" color="`, p.color(),
		`" stroke="currentColor" fill="none" stroke-width="`, width, `" stroke-linejoin="round" points="`)
	var last [2]int64
	for i, pt := range p.pts {
		x, y := f.px(pt.X), f.py(pt.Y)
		key := [2]int64{int64(math.Round(x * 10)), int64(math.Round(y * 10))}
		if i > 0 && key == last {
			continue
		}
		if i > 0 {
			w.raw(" ")
		}
		last = key
		w.num(x)
		w.raw(",")
		w.num(y)
	}
	w.raw(`"/>`)
}

// writeMarkers draws a scatter series: circles with <title> tooltips when
// the series has labels, otherwise one path of zero-length round-capped
// segments (a dot per point at a third of the bytes).
func writeMarkers(w *svgWriter, f frame, p *prepared) {
	r := 2.5
	if p.hl {
		r = 3.5
	}
	if p.labels != nil {
		w.raw(`<g class="`, p.class("plot-markers"), `" color="`, p.color(), `" fill="currentColor">`)
		for i, pt := range p.pts {
			w.raw("<circle")
			w.attr("cx", f.px(pt.X))
			w.attr("cy", f.py(pt.Y))
			w.attr("r", r)
			if p.labels[i] == "" {
				w.raw("/>")
				continue
			}
			w.raw("><title>")
			w.text(p.labels[i])
			w.raw("</title></circle>")
		}
		w.raw("</g>")
		return
	}
	w.raw(`<path class="`, p.class("plot-markers"), `" color="`, p.color(), `" stroke="currentColor"`)
	w.attr("stroke-width", 2*r)
	w.raw(` stroke-linecap="round" fill="none" d="`)
	var last [2]int64
	for i, pt := range p.pts {
		x, y := f.px(pt.X), f.py(pt.Y)
		key := [2]int64{int64(math.Round(x * 10)), int64(math.Round(y * 10))}
		if i > 0 && key == last { // same dot again
			continue
		}
		last = key
		w.raw("M")
		w.num(x)
		w.raw(" ")
		w.num(y)
		w.raw("h0")
	}
	w.raw(`"/>`)
}

func writeNote(w *svgWriter, note string, W, H float64) {
	if note == "" {
		return
	}
	w.raw(`<text class="plot-note"`)
	w.attr("x", W-6)
	w.attr("y", H-5)
	w.raw(` text-anchor="end" font-size="10" font-style="italic" fill="`, mutedText, `">`)
	w.text(note)
	w.raw(`</text>`)
}
