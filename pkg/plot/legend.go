package plot

import (
	"math"
	"strconv"
)

const (
	legendRowH    = 15.0
	legendMaxRows = 3
	legendMaxName = 32 // runes; longer names are cut, the full name becomes a tooltip
	legendPad     = 8.0
	swatch        = 10.0
)

type legendEntry struct {
	p         *prepared
	text      string
	truncated bool
	x         float64
	row       int
}

// legend is the legend's layout: entries in rows across the top of the
// chart, and how many series did not fit in legendMaxRows rows.
type legend struct {
	entries []legendEntry
	rows    int
	more    int
	moreX   float64
}

func entryWidth(text string) float64 {
	return swatch + 4 + textWidth(text, fontSize) + 14
}

// layoutLegend places an entry per series, left to right, wrapping at the
// chart's width. A single unnamed series gets no legend.
func layoutLegend(ps []prepared, width float64) legend {
	var l legend
	if len(ps) == 0 || (len(ps) == 1 && !ps[0].named && ps[0].href == "") {
		return l
	}
	x, row := legendPad, 0
	for i := range ps {
		text, cut := truncate(ps[i].name, legendMaxName)
		ew := entryWidth(text)
		if x > legendPad && x+ew > width-legendPad {
			row, x = row+1, legendPad
		}
		if row == legendMaxRows {
			l.more = len(ps) - i
			break
		}
		l.entries = append(l.entries, legendEntry{p: &ps[i], text: text, truncated: cut, x: x, row: row})
		x += ew
	}
	l.rows = min(row+1, legendMaxRows)
	if l.more > 0 {
		// Make room for "+N more" at the end of the last row.
		moreW := textWidth("+"+strconv.Itoa(len(ps))+" more", fontSize) + legendPad
		for len(l.entries) > 0 {
			last := l.entries[len(l.entries)-1]
			end := last.x + entryWidth(last.text)
			if last.row < legendMaxRows-1 || end+moreW <= width {
				l.moreX = end
				break
			}
			l.entries = l.entries[:len(l.entries)-1]
			l.more++
			l.moreX = last.x
		}
	}
	return l
}

func writeLegend(w *svgWriter, l legend, top float64) {
	if len(l.entries) == 0 && l.more == 0 {
		return
	}
	w.raw(`<g class="plot-legend" fill="`, textColor, `">`)
	for _, e := range l.entries {
		y := top + float64(e.row)*legendRowH
		if e.p.href != "" {
			w.raw(`<a href="`)
			w.text(e.p.href)
			w.raw(`">`)
		} else {
			w.raw("<g>")
		}
		if e.truncated {
			w.raw("<title>")
			w.text(e.p.name)
			w.raw("</title>")
		}
		w.raw(`<rect class="`, e.p.class("plot-swatch"), `" color="`, e.p.color(), `" fill="currentColor"`)
		w.attr("x", e.x)
		w.attr("y", y+1)
		w.raw(` width="10" height="10" rx="2"/><text`)
		w.attr("x", e.x+swatch+4)
		w.attr("y", y+10)
		if e.p.hl {
			w.raw(` font-weight="600"`)
		}
		if e.p.href != "" {
			w.raw(` text-decoration="underline"`)
		}
		w.raw(">")
		w.text(e.text)
		w.raw("</text>")
		if e.p.href != "" {
			w.raw("</a>")
		} else {
			w.raw("</g>")
		}
	}
	if l.more > 0 {
		w.raw(`<text fill="`, mutedText, `"`)
		w.attr("x", math.Max(l.moreX, legendPad))
		w.attr("y", top+float64(l.rows-1)*legendRowH+10)
		w.raw(">+", strconv.Itoa(l.more), " more</text>")
	}
	w.raw("</g>")
}
