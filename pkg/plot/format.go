package plot

import (
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// svgWriter accumulates SVG markup. Numbers go through num, which rounds to
// one decimal so the output stays small and deterministic; text goes through
// text, which escapes it.
type svgWriter struct{ b []byte }

func (w *svgWriter) raw(ss ...string) {
	for _, s := range ss {
		w.b = append(w.b, s...)
	}
}

// num writes v rounded to one decimal place, without trailing zeros.
func (w *svgWriter) num(v float64) {
	w.b = appendNum(w.b, v)
}

// attr writes ` name="v"` with v rounded as num does.
func (w *svgWriter) attr(name string, v float64) {
	w.b = append(w.b, ' ')
	w.b = append(w.b, name...)
	w.b = append(w.b, '=', '"')
	w.b = appendNum(w.b, v)
	w.b = append(w.b, '"')
}

// text writes s sanitized and HTML-escaped, safe as element content and as a
// double-quoted attribute value.
func (w *svgWriter) text(s string) {
	w.b = append(w.b, escape(s)...)
}

func (w *svgWriter) html() template.HTML { return template.HTML(w.b) }

func appendNum(b []byte, v float64) []byte {
	t := math.Round(v * 10)
	if !(math.Abs(t) < 1e15) { // huge (or NaN, which cannot reach here)
		if !finite(t) {
			return append(b, '0')
		}
		return strconv.AppendFloat(b, t/10, 'f', -1, 64)
	}
	// Integer tenths: several times faster than shortest-float formatting.
	i := int64(t)
	if i < 0 {
		b, i = append(b, '-'), -i
	}
	b = strconv.AppendInt(b, i/10, 10)
	if d := i % 10; d != 0 {
		b = append(b, '.', byte('0'+d))
	}
	return b
}

// escape makes s safe as XML/HTML text or attribute value: invalid UTF-8 is
// replaced, control characters (which XML forbids) become spaces, and the
// five markup characters are escaped.
func escape(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff {
			return ' '
		}
		return r
	}, s)
	return template.HTMLEscapeString(s)
}

// truncate shortens s to at most n runes, ending in "…" when it cut.
func truncate(s string, n int) (string, bool) {
	if utf8.RuneCountInString(s) <= n {
		return s, false
	}
	rs := []rune(s)
	return strings.TrimRightFunc(string(rs[:n-1]), unicode.IsSpace) + "…", true
}

// textWidth estimates the rendered width of s in px at the given font size
// (an average glyph is about 0.6 em wide in a sans-serif face).
func textWidth(s string, fontSize float64) float64 {
	return float64(utf8.RuneCountInString(s)) * fontSize * 0.6
}

// safeHref returns h if it is a relative URL or an absolute http(s) URL, and
// "" otherwise (javascript:, data:, vbscript:, anything with whitespace or
// control characters, which browsers strip before reading the scheme).
func safeHref(h string) string {
	if h == "" {
		return ""
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return ""
		}
	}
	if !utf8.ValidString(h) {
		return ""
	}
	u, err := url.Parse(h)
	if err != nil {
		return ""
	}
	switch strings.ToLower(u.Scheme) {
	case "":
		return h
	case "http", "https":
		if u.Host == "" {
			return ""
		}
		return h
	}
	return ""
}

var siPrefixes = []struct {
	scale  float64
	suffix string
}{
	{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"},
}

// formatTick formats a linear-axis tick value v for ticks step apart whose
// largest magnitude is maxAbs: an SI suffix from a thousand up (chosen per
// tick, so 500, 1k, 1.5k), enough decimals to tell neighbours apart and no
// more, and exponent form on axes of very small or very large values.
func formatTick(v, step, maxAbs float64) string {
	if math.Abs(v) < step*1e-6 {
		return "0"
	}
	if maxAbs >= 1e15 || maxAbs < 1e-3 {
		sig := int(math.Floor(math.Log10(math.Abs(v)))-math.Floor(math.Log10(step)+1e-9)) + 1
		sig = min(max(sig, 1), 15)
		return strconv.FormatFloat(v, 'g', sig, 64)
	}
	scale, suffix := 1.0, ""
	for _, p := range siPrefixes {
		if math.Abs(v) >= p.scale {
			scale, suffix = p.scale, p.suffix
			break
		}
	}
	dec := int(math.Ceil(-math.Log10(step/scale) - 1e-9))
	dec = min(max(dec, 0), 15)
	return trimZeros(strconv.FormatFloat(v/scale, 'f', dec, 64)) + suffix
}

// formatCompact formats v with three significant digits: 1.23k, 0.25, 3e-05.
func formatCompact(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		if v == 0 {
			return "0"
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	// Round first so 999.9 becomes 1k, not 1e+03.
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	if err != nil { // rounded past the largest float
		r = v
	}
	a := math.Abs(r)
	if a >= 1e15 || a < 1e-4 {
		return strconv.FormatFloat(r, 'g', 3, 64)
	}
	for _, p := range siPrefixes {
		if a >= p.scale {
			return strconv.FormatFloat(r/p.scale, 'g', 3, 64) + p.suffix
		}
	}
	return strconv.FormatFloat(r, 'g', 3, 64)
}

// formatPow formats m × 10^e for log-axis ticks (m is 1, 2, 3 or 5).
func formatPow(m float64, e int) string {
	if e >= -4 && e < 15 {
		return formatCompact(m * math.Pow10(e))
	}
	sign := "+"
	if e < 0 {
		sign, e = "-", -e
	}
	exp := strconv.Itoa(e)
	if len(exp) < 2 {
		exp = "0" + exp
	}
	return strconv.FormatFloat(m, 'g', -1, 64) + "e" + sign + exp
}

func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
