package plot

import (
	"encoding/xml"
	"errors"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// node is one element of a parsed SVG.
type node struct {
	name   string
	attrs  map[string]string
	parent *node
	text   string // character data directly inside
}

// doc is a parsed SVG: every element in document order, and all its text.
type doc struct {
	nodes []*node
	text  []string
}

// parse decodes out strictly as XML, failing the test if it is not
// well-formed or not a single <svg> root.
func parse(t *testing.T, out template.HTML) doc {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(out)))
	d.Strict = true
	var res doc
	var stack []*node
	roots := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "output is not well-formed XML:\n%s", out)
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name.Local, attrs: map[string]string{}}
			if len(stack) > 0 {
				n.parent = stack[len(stack)-1]
			}
			for _, a := range tok.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) == 0 {
				roots++
			}
			stack = append(stack, n)
			res.nodes = append(res.nodes, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			require.NotEmpty(t, stack, "text outside the root element")
			stack[len(stack)-1].text += string(tok)
			res.text = append(res.text, string(tok))
		}
	}
	require.Equal(t, 1, roots)
	require.Equal(t, "svg", res.nodes[0].name)
	return res
}

func (d doc) all(name string) []*node {
	var out []*node
	for _, n := range d.nodes {
		if n.name == name {
			out = append(out, n)
		}
	}
	return out
}

// withClass returns the elements whose class list contains c.
func (d doc) withClass(c string) []*node {
	var out []*node
	for _, n := range d.nodes {
		for _, f := range strings.Fields(n.attrs["class"]) {
			if f == c {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// children returns the <text> elements inside n, at any depth.
func (n *node) children(d doc) []*node {
	var out []*node
	for _, c := range d.nodes {
		if c.name != "text" {
			continue
		}
		for p := c.parent; p != nil; p = p.parent {
			if p == n {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func (d doc) hasText(s string) bool {
	for _, t := range d.text {
		if t == s {
			return true
		}
	}
	return false
}

func (d doc) note() string {
	if ns := d.withClass("plot-note"); len(ns) == 1 {
		return ns[0].text
	}
	return ""
}

// polylinePoints counts the points of every polyline.
func (d doc) polylinePoints() []int {
	var out []int
	for _, n := range d.all("polyline") {
		out = append(out, len(strings.Fields(n.attrs["points"])))
	}
	return out
}

func line(n int, f func(i int) Point) []Point {
	pts := make([]Point, n)
	for i := range pts {
		pts[i] = f(i)
	}
	return pts
}

func TestChartsAreWellFormedSVG(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	ramp := line(50, func(i int) Point { return Point{float64(i), float64(i * i)} })
	cases := []struct {
		name   string
		series []Series
		o      Options
	}{
		{"nil", nil, Options{}},
		{"empty series", []Series{{Name: "a"}}, Options{}},
		{"one point", []Series{{Name: "a", Points: []Point{{1, 2}}}}, Options{}},
		{"constant", []Series{{Points: line(10, func(i int) Point { return Point{float64(i), 7} })}}, Options{}},
		{"all NaN", []Series{{Points: []Point{{nan, 1}, {1, inf}}}}, Options{}},
		{"negative tiny", []Series{{Points: []Point{{-3e-7, -1e-9}, {2e-7, 4e-9}}}}, Options{Title: "t", XLabel: "x", YLabel: "y"}},
		{"huge", []Series{{Points: []Point{{-1e300, 1e300}, {1e300, -1e300}}}}, Options{}},
		{"max range", []Series{{Points: []Point{{-math.MaxFloat64, math.MaxFloat64}, {math.MaxFloat64, -math.MaxFloat64}}}}, Options{}},
		{"log both", []Series{{Points: ramp}}, Options{LogX: true, LogY: true}},
		{"log constant", []Series{{Points: []Point{{1, 100}, {2, 100}}}}, Options{LogY: true}},
		{"log subnormal", []Series{{Points: []Point{{1, 5e-324}, {2, 1e308}}}}, Options{LogY: true}},
		{"time", []Series{{Points: line(100, func(i int) Point { return Point{1.7e9 + float64(i)*600, float64(i)} })}}, Options{XTime: true}},
		{"time one instant", []Series{{Points: []Point{{1.7e9, 1}}}}, Options{XTime: true}},
		{"time subsecond", []Series{{Points: []Point{{1.7e9, 1}, {1.7e9 + 0.4, 2}}}}, Options{XTime: true}},
		{"tiny canvas", []Series{{Name: "a", Points: ramp}}, Options{Width: 1, Height: 1, Title: "a very long title that does not fit"}},
		{"control chars and bad utf8", []Series{{Name: "a\x00b\x01c\xff\u2028", Points: ramp}}, Options{Title: "\x1b[31m"}},
		{"many series", manySeries(40), Options{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, out := range []template.HTML{Lines(tc.series, tc.o), Scatter(tc.series, tc.o)} {
				d := parse(t, out)
				root := d.nodes[0].attrs
				assert.Equal(t, "img", root["role"])
				assert.NotEmpty(t, root["aria-label"])
				assert.Regexp(t, `^0 0 \d+ \d+$`, root["viewBox"])
				assert.NotContains(t, string(out), "NaN")
				assert.NotContains(t, string(out), "Inf")
			}
		})
	}
}

func manySeries(n int) []Series {
	ss := make([]Series, n)
	for i := range ss {
		ss[i] = Series{Name: strings.Repeat("run", i%5+1), Points: line(5, func(j int) Point { return Point{float64(j), float64(i * j)} })}
	}
	return ss
}

func TestTextIsEscaped(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	series := []Series{{
		Name:   evil,
		Points: []Point{{1, 1}, {2, 3}},
		Labels: []string{`"><img src=x onerror=alert(1)>`, "a & b"},
	}}
	o := Options{Title: evil, XLabel: "x </text>", YLabel: `y "quoted" 'single'`}
	for name, out := range map[string]template.HTML{"lines": Lines(series, o), "scatter": Scatter(series, o)} {
		t.Run(name, func(t *testing.T) {
			raw := string(out)
			assert.NotContains(t, raw, "<script")
			assert.NotContains(t, raw, "<img")
			assert.Contains(t, raw, "&lt;script&gt;")
			d := parse(t, out)
			assert.True(t, d.hasText(evil), "title and legend show the name as text")
			assert.True(t, d.hasText("x </text>"))
			assert.True(t, d.hasText(`y "quoted" 'single'`))
			assert.Contains(t, d.nodes[0].attrs["aria-label"], evil)
			if name == "scatter" {
				assert.True(t, d.hasText(`"><img src=x onerror=alert(1)>`), "tooltip shows the label as text")
				assert.True(t, d.hasText("a & b"))
			}
		})
	}
}

func TestEmptyInputSaysNoData(t *testing.T) {
	cases := []struct {
		name   string
		series []Series
		o      Options
		note   string
	}{
		{"nil", nil, Options{}, ""},
		{"no points", []Series{{Name: "a"}, {Name: "b", Points: []Point{}}}, Options{}, ""},
		{"only NaN", []Series{{Points: []Point{{math.NaN(), 1}, {2, math.Inf(-1)}}}}, Options{}, "2 non-finite values skipped"},
		{"only non-positive on log", []Series{{Points: []Point{{1, 0}, {2, -5}, {3, 0}}}}, Options{LogY: true}, "3 non-positive values dropped (log scale)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := Lines(tc.series, tc.o)
			d := parse(t, out)
			assert.True(t, d.hasText("no data"))
			assert.Contains(t, d.nodes[0].attrs["aria-label"], "no data")
			assert.Equal(t, tc.note, d.note())
			assert.Empty(t, d.all("polyline"))
			assert.Less(t, len(out), 1000, "a small SVG")
		})
	}
}

func TestSinglePointAndConstantSeries(t *testing.T) {
	t.Run("single point is a dot with ticks around it", func(t *testing.T) {
		d := parse(t, Lines([]Series{{Name: "a", Points: []Point{{3, 5}}}}, Options{}))
		assert.Empty(t, d.all("polyline"))
		dots := d.withClass("plot-line")
		require.Len(t, dots, 1)
		assert.Equal(t, "circle", dots[0].name)
		assert.True(t, d.hasText("5"), "the value's own tick")
		assert.True(t, d.hasText("3"))
	})
	t.Run("constant Y is a flat line mid-chart", func(t *testing.T) {
		pts := line(20, func(i int) Point { return Point{float64(i), 42} })
		d := parse(t, Lines([]Series{{Points: pts}}, Options{}))
		pl := d.all("polyline")
		require.Len(t, pl, 1)
		ys := map[string]bool{}
		for _, p := range strings.Fields(pl[0].attrs["points"]) {
			ys[strings.Split(p, ",")[1]] = true
		}
		assert.Len(t, ys, 1, "all points at one height")
		assert.True(t, d.hasText("42"))
		ticks := d.withClass("plot-tick")
		require.Len(t, ticks, 1)
	})
}

func TestNonFiniteValuesAreSkippedAndCounted(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	series := []Series{
		{Name: "a", Points: []Point{{0, 1}, {1, nan}, {2, 3}, {inf, 4}, {4, 5}}},
		{Name: "b", Points: []Point{{0, -inf}, {1, 2}, {2, 2.5}}},
	}
	d := parse(t, Lines(series, Options{}))
	assert.Equal(t, "3 non-finite values skipped", d.note())
	assert.Equal(t, []int{3, 2}, d.polylinePoints())

	d = parse(t, Lines([]Series{{Points: []Point{{0, 1}, {1, nan}, {2, 3}}}}, Options{}))
	assert.Equal(t, "1 non-finite value skipped", d.note())
}

func TestLogScaleDropsNonPositiveValuesWithANote(t *testing.T) {
	pts := []Point{{1, 10}, {2, 0}, {3, -4}, {4, 1000}, {5, 100}}
	cases := []struct {
		name   string
		o      Options
		note   string
		points int
		ticks  []string // y tick labels on a log axis, x otherwise
	}{
		{"log y", Options{LogY: true}, "2 non-positive values dropped (log scale)", 3, []string{"10", "100", "1k"}},
		{"linear y keeps them", Options{}, "", 5, nil},
		{"log x drops nothing here", Options{LogX: true}, "", 5, nil},
		{"log x and y", Options{LogX: true, LogY: true}, "2 non-positive values dropped (log scale)", 3, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := parse(t, Lines([]Series{{Name: "a", Points: pts}}, tc.o))
			assert.Equal(t, tc.note, d.note())
			assert.Equal(t, []int{tc.points}, d.polylinePoints())
			for _, l := range tc.ticks {
				assert.True(t, d.hasText(l), "tick %q", l)
			}
		})
	}
	t.Run("log x with zero and negative X", func(t *testing.T) {
		d := parse(t, Scatter([]Series{{Points: []Point{{0, 1}, {-1, 2}, {1, 3}, {10, 4}, {100, 5}}}}, Options{LogX: true}))
		assert.Equal(t, "2 non-positive values dropped (log scale)", d.note())
		for _, l := range []string{"1", "10", "100"} {
			assert.True(t, d.hasText(l), "tick %q", l)
		}
	})
}

func TestHugeInputIsDownsampled(t *testing.T) {
	const n = 1_000_000
	pts := line(n, func(i int) Point { return Point{float64(i), math.Sin(float64(i) / 1000)} })
	pts[123_457].Y = 50 // a spike that must survive
	pts[765_433].Y = -50

	out := Lines([]Series{{Name: "big", Points: pts}}, Options{})
	d := parse(t, out)
	counts := d.polylinePoints()
	require.Len(t, counts, 1)
	assert.LessOrEqual(t, counts[0], defaultMaxPoints)
	assert.Less(t, len(out), 16_000, "bytes")
	// The spikes survive: the line reaches past the ±40 grid lines.
	tickY := map[string]float64{}
	for _, n := range d.withClass("plot-tick")[0].children(d) {
		y, err := strconv.ParseFloat(n.attrs["y"], 64)
		require.NoError(t, err)
		tickY[n.text] = y - 3.5
	}
	require.Contains(t, tickY, "40")
	require.Contains(t, tickY, "-40")
	var ys []float64
	for _, p := range strings.Fields(d.all("polyline")[0].attrs["points"]) {
		y, err := strconv.ParseFloat(strings.Split(p, ",")[1], 64)
		require.NoError(t, err)
		ys = append(ys, y)
	}
	assert.Less(t, slices.Min(ys), tickY["40"])
	assert.Greater(t, slices.Max(ys), tickY["-40"])

	out = Lines([]Series{{Points: pts}}, Options{MaxPoints: 50})
	assert.LessOrEqual(t, parse(t, out).polylinePoints()[0], 50)

	out = Scatter([]Series{{Points: pts}}, Options{})
	d = parse(t, out)
	assert.Less(t, len(out), 16_000, "bytes")
	assert.Equal(t, "showing 400 of 1000000 points", d.note())
	markers := d.withClass("plot-markers")
	require.Len(t, markers, 1)
	assert.LessOrEqual(t, strings.Count(markers[0].attrs["d"], "M"), defaultMaxPoints)
}

func TestUnsortedPointsAreDrawnInXOrder(t *testing.T) {
	d := parse(t, Lines([]Series{{Points: []Point{{3, 1}, {1, 1}, {2, 2}}}}, Options{Width: 300}))
	var xs []float64
	for _, p := range strings.Fields(d.all("polyline")[0].attrs["points"]) {
		x, err := strconv.ParseFloat(strings.Split(p, ",")[0], 64)
		require.NoError(t, err)
		xs = append(xs, x)
	}
	assert.IsIncreasing(t, xs)
}

func TestScatterLabelsBecomeTooltips(t *testing.T) {
	series := []Series{
		{Name: "runs", Points: []Point{{1, 1}, {2, 2}, {3, 3}}, Labels: []string{"run 1", "", "run 3"}},
		{Name: "plain", Points: []Point{{1, 2}, {2, 3}}},
	}
	d := parse(t, Scatter(series, Options{}))
	circles := d.all("circle")
	require.Len(t, circles, 3, "a circle per labelled point")
	titles := d.all("title")
	require.Len(t, titles, 2, "unlabelled points carry no <title>")
	assert.Equal(t, "run 1", titles[0].text)
	assert.Equal(t, "run 3", titles[1].text)
	paths := d.withClass("plot-markers")
	require.Len(t, paths, 2)
	assert.Equal(t, "path", paths[1].name)
	assert.Equal(t, 2, strings.Count(paths[1].attrs["d"], "h0"), "one dot per unlabelled point")
}

func TestHrefFiltering(t *testing.T) {
	cases := []struct {
		href string
		want string // the href attribute, "" when there is no link
	}{
		{"/runs/42", "/runs/42"},
		{"runs/42?tab=log&x=1", "runs/42?tab=log&x=1"},
		{"#best", "#best"},
		{"https://ci.example.org/job/7", "https://ci.example.org/job/7"},
		{"HTTP://example.org/", "HTTP://example.org/"},
		{"//example.org/x", "//example.org/x"},
		{"javascript:alert(1)", ""},
		{"JavaScript:alert(1)", ""},
		{" javascript:alert(1)", ""},
		{"java\tscript:alert(1)", ""},
		{"java\nscript:alert(1)", ""},
		{"\x01javascript:alert(1)", ""},
		{"data:text/html,<script>alert(1)</script>", ""},
		{"vbscript:msgbox", ""},
		{"ftp://example.org/", ""},
		{"http:/runs", ""},
		{`/\evil.example`, ""},
		{"", ""},
	}
	for _, tc := range cases {
		t.Run(tc.href, func(t *testing.T) {
			out := Lines([]Series{{Name: "a", Points: []Point{{1, 1}, {2, 2}}, Href: tc.href}, {Name: "b", Points: []Point{{1, 2}}}}, Options{})
			d := parse(t, out)
			links := d.all("a")
			if tc.want == "" {
				assert.Empty(t, links)
				assert.NotContains(t, strings.ToLower(string(out)), "script:")
				return
			}
			require.Len(t, links, 1)
			assert.Equal(t, tc.want, links[0].attrs["href"])
		})
	}
}

func TestLegend(t *testing.T) {
	t.Run("single unnamed series has none", func(t *testing.T) {
		d := parse(t, Lines([]Series{{Points: []Point{{1, 1}, {2, 2}}}}, Options{}))
		assert.Empty(t, d.withClass("plot-legend"))
	})
	t.Run("unnamed series among several are numbered", func(t *testing.T) {
		d := parse(t, Lines([]Series{{Name: "a", Points: []Point{{1, 1}}}, {Points: []Point{{1, 2}}}}, Options{}))
		assert.True(t, d.hasText("a"))
		assert.True(t, d.hasText("series 2"))
	})
	t.Run("highlight is bold, accent, drawn last", func(t *testing.T) {
		d := parse(t, Lines([]Series{
			{Name: "best", Points: []Point{{1, 1}, {2, 2}}, Highlight: true},
			{Name: "other", Points: []Point{{1, 2}, {2, 1}}},
		}, Options{}))
		lines := d.all("polyline")
		require.Len(t, lines, 2)
		assert.Equal(t, "plot-line s1", lines[0].attrs["class"])
		assert.Equal(t, "plot-line s0 hl", lines[1].attrs["class"])
		assert.Equal(t, accent, lines[1].attrs["color"])
		assert.Equal(t, "3", lines[1].attrs["stroke-width"])
	})
	t.Run("long names are cut with the full name as tooltip", func(t *testing.T) {
		long := strings.Repeat("x", 100)
		d := parse(t, Lines([]Series{{Name: long, Points: []Point{{1, 1}}}}, Options{}))
		assert.True(t, d.hasText(strings.Repeat("x", legendMaxName-1)+"…"))
		require.Len(t, d.all("title"), 1)
		assert.Equal(t, long, d.all("title")[0].text)
	})
	t.Run("too many series end in +N more", func(t *testing.T) {
		out := Lines(manySeries(40), Options{})
		d := parse(t, out)
		swatches := d.withClass("plot-swatch")
		assert.Less(t, len(swatches), 40)
		assert.True(t, d.hasText("+"+strconv.Itoa(40-len(swatches))+" more"))
		assert.Len(t, d.all("polyline"), 40, "every series is still drawn")
	})
	t.Run("palette slots wrap", func(t *testing.T) {
		d := parse(t, Lines(manySeries(10), Options{}))
		assert.Equal(t, "plot-line s1", d.all("polyline")[9].attrs["class"])
	})
}

func TestOutputIsDeterministic(t *testing.T) {
	pts := line(5000, func(i int) Point { return Point{float64(i % 977), math.Sin(float64(i))} })
	series := []Series{{Name: "a", Points: pts, Labels: []string{"x"}}, {Name: "b", Points: pts[:10], Highlight: true}}
	o := Options{Title: "t", XTime: true}
	assert.Equal(t, Lines(series, o), Lines(series, o))
	assert.Equal(t, Scatter(series, o), Scatter(series, o))
}

func TestNumbersAreRoundedToOneDecimal(t *testing.T) {
	pts := line(7, func(i int) Point { return Point{float64(i) / 3, math.Sqrt(float64(i))} })
	out := string(Lines([]Series{{Points: pts}}, Options{Width: 333, Height: 177}))
	assert.NotRegexp(t, `\d\.\d\d`, out)
	assert.NotContains(t, out, "-0,")
}

func TestDefaultsAndAriaLabel(t *testing.T) {
	d := parse(t, Lines([]Series{{Name: "a", Points: []Point{{1, 1}, {2, 2}}}, {Name: "b", Points: []Point{{1, 3}}}}, Options{Title: "Loss"}))
	root := d.nodes[0].attrs
	assert.Equal(t, "0 0 640 240", root["viewBox"])
	assert.Equal(t, "Loss (line chart) of a, b", root["aria-label"])
	d = parse(t, Scatter(manySeries(7), Options{Width: 300, Height: 100}))
	assert.Equal(t, "0 0 300 100", d.nodes[0].attrs["viewBox"])
	assert.Equal(t, "scatter plot of run, runrun, runrunrun, runrunrunrun, runrunrunrunrun, and 2 more", d.nodes[0].attrs["aria-label"])
}

func TestChartDropsIntoAnHTMLTemplate(t *testing.T) {
	page := template.Must(template.New("page").Parse(`<figure>{{.Chart}}<figcaption>{{.Caption}}</figcaption></figure>`))
	var buf strings.Builder
	err := page.Execute(&buf, map[string]any{
		"Chart":   Lines([]Series{{Name: "<script>alert(1)</script>", Points: []Point{{1, 1}, {2, 2}}}}, Options{}),
		"Caption": "loss",
	})
	require.NoError(t, err)
	out := buf.String()
	assert.True(t, strings.HasPrefix(out, `<figure><svg xmlns="http://www.w3.org/2000/svg"`), "the SVG is inserted as markup, not escaped text")
	assert.NotContains(t, out, "<script>")
	assert.Contains(t, out, "&lt;script&gt;alert(1)&lt;/script&gt;")
}
