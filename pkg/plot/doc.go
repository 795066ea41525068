// Package plot renders small, self-contained SVG charts on the server for
// ferry's web dashboard: line charts (Lines), scatter plots (Scatter) and
// sparklines (Sparkline). The result is a template.HTML holding one inline
// <svg> with a viewBox, role="img" and an aria-label, ready to drop into an
// html/template page; no JavaScript and no charting library are involved.
//
// It owns the chart geometry: cleaning the input (NaN and ±Inf skipped,
// non-positive values dropped on log axes, each counted in a note under the
// chart), min/max downsampling (Downsample) so a million points still make a
// small SVG, "nice" axis ticks (1, 2, 5 × 10^k; powers of ten on log axes;
// calendar steps for Unix-time axes), compact tick labels (1.2k, 3e-05,
// 0.25), the legend, and escaping of every piece of text and link it draws.
// The output is deterministic: the same input gives the same bytes.
//
// Elements carry CSS classes so a page stylesheet can theme them: the root
// is "plot" (or "plot-spark"), series elements are "plot-line",
// "plot-markers", "plot-swatch" plus "s0".."s7" (the palette slot) and "hl"
// for a highlighted series. Series colours are set through the SVG color
// property and drawn with currentColor, so ".plot .s0 { color: … }" recolours
// a series' line, markers and legend swatch at once.
//
// It does not own the data (callers pass points already read from the store),
// the page layout, or any interactivity beyond native <title> tooltips and
// legend links.
package plot
