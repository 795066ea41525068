package plot

import (
	"fmt"
	"math"
	"testing"
)

func BenchmarkLines5x10k(b *testing.B) {
	series := make([]Series, 5)
	for s := range series {
		series[s] = Series{
			Name:      fmt.Sprintf("run %d", s),
			Highlight: s == 2,
			Points: line(10_000, func(i int) Point {
				return Point{float64(i), math.Sin(float64(i)/300+float64(s)) * float64(s+1)}
			}),
		}
	}
	o := Options{Title: "loss", XLabel: "step", YLabel: "loss"}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		n = len(Lines(series, o))
	}
	b.ReportMetric(float64(n), "svg-bytes")
}

func BenchmarkScatter1k(b *testing.B) {
	pts := line(1000, func(i int) Point { return Point{float64(i*7919%1000) / 10, math.Sqrt(float64(i))} })
	labels := make([]string, len(pts))
	for i := range labels {
		labels[i] = fmt.Sprintf("run %d", i)
	}
	cases := map[string][]Series{
		"plain":    {{Name: "runs", Points: pts}},
		"labelled": {{Name: "runs", Points: pts, Labels: labels}},
	}
	for _, name := range []string{"plain", "labelled"} {
		b.Run(name, func(b *testing.B) {
			var n int
			b.ReportAllocs()
			for b.Loop() {
				n = len(Scatter(cases[name], Options{Title: "runtime vs threads", MaxPoints: 1000}))
			}
			b.ReportMetric(float64(n), "svg-bytes")
		})
	}
}

func BenchmarkLines1M(b *testing.B) {
	pts := line(1_000_000, func(i int) Point { return Point{float64(i), math.Sin(float64(i) / 1000)} })
	var n int
	for b.Loop() {
		n = len(Lines([]Series{{Name: "big", Points: pts}}, Options{}))
	}
	b.ReportMetric(float64(n), "svg-bytes")
}
