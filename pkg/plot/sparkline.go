package plot

import (
	"html/template"
	"math"
	"strconv"
)

// Sparkline renders ys as a tiny line with no axes, text or legend, with a
// dot on the last value; width and height default to 100×20 px. Index is
// X. NaN and ±Inf values are skipped. Long inputs are reduced with
// Downsample to about two points per pixel column. The aria-label gives the
// count, minimum, maximum and last value.
func Sparkline(ys []float64, width, height int) template.HTML {
	if width <= 0 {
		width = 100
	}
	if height <= 0 {
		height = 20
	}
	width, height = min(max(width, 8), 8192), min(max(height, 4), 8192)
	pts := make([]Point, 0, len(ys))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, y := range ys {
		if finite(y) {
			pts = append(pts, Point{float64(i), y})
			lo, hi = math.Min(lo, y), math.Max(hi, y)
		}
	}
	var w svgWriter
	if len(pts) == 0 {
		openSVG(&w, "plot-spark", width, height, "sparkline: no data")
		w.raw("</svg>")
		return w.html()
	}
	last := pts[len(pts)-1]
	openSVG(&w, "plot-spark", width, height, "sparkline of "+plural(len(pts), "value", "values")+
		": min "+formatCompact(lo)+", max "+formatCompact(hi)+", last "+formatCompact(last.Y))
	pts = Downsample(pts, width)

	const pad = 2.0
	W, H := float64(width), float64(height)
	n := float64(len(ys) - 1)
	px := func(x float64) float64 {
		if n == 0 {
			return W / 2
		}
		return pad + x/n*(W-2*pad)
	}
	py := func(y float64) float64 {
		if hi == lo {
			return H / 2
		}
		return H - pad - (y-lo)/(hi-lo)*(H-2*pad)
	}
	if len(pts) > 1 {
		w.raw(`<polyline class="plot-spark-line s0" color="`, palette[0],
			`" stroke="currentColor" fill="none" stroke-width="1.5" stroke-linejoin="round" points="`)
		for i, pt := range pts {
			if i > 0 {
				w.raw(" ")
			}
			w.num(px(pt.X))
			w.raw(",")
			w.num(py(pt.Y))
		}
		w.raw(`"/>`)
	}
	w.raw(`<circle class="plot-spark-last s0" color="`, palette[0], `" fill="currentColor"`)
	w.attr("cx", px(last.X))
	w.attr("cy", py(last.Y))
	w.raw(` r="`, strconv.FormatFloat(math.Min(2, H/4), 'f', -1, 64), `"/></svg>`)
	return w.html()
}
