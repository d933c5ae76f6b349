// Package plot renders small time-series charts as self-contained SVG: lines and stacked
// bars over evenly spaced time buckets, with axes, a title and a text legend.
//
// The charts are made to be read without colour: each series has its own dash pattern and
// marker (lines) or fill pattern (bars), is named by a direct label at its end as well as in
// the legend, and every bucket carries a <title> with its values that browsers show on hover.
// The <svg> has role="img" and an aria-label summarising the data for screen readers.
//
// Output is deterministic: the same Chart renders to the same bytes. The package imports
// nothing of auditstream and holds no state; its functions are safe for concurrent use.
package plot

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is how a chart draws its series.
type Kind int

const (
	// Lines draws each series as a line with markers; a NaN value is a gap.
	Lines Kind = iota
	// StackedBars draws one bar per bucket, the series stacked bottom to top in order.
	StackedBars
)

// Unit says how values read on the y axis and in titles.
type Unit int

const (
	// Count is a number of things: 1200 reads 1.2k.
	Count Unit = iota
	// Seconds is a duration in seconds: 90 reads 1m30s.
	Seconds
)

// Series is one named row of values, one per bucket of its chart. NaN means "not known"
// (a gap in a line, nothing in a bar).
type Series struct {
	Name   string
	Values []float64
	// Gauge marks a level (a backlog) rather than a count per bucket: the summary then gives
	// its peak and last value instead of its total.
	Gauge bool
}

// Chart is what Render draws.
type Chart struct {
	// ID makes the chart's pattern ids unique when a page holds several charts: letters,
	// digits and '-' only.
	ID    string
	Title string
	Kind  Kind
	Unit  Unit
	// Start is the start of the first bucket; Step the length of each. The x axis shows UTC.
	Start time.Time
	Step  time.Duration
	// Series share the buckets: each has as many values as the chart has buckets (the
	// longest series sets the number; shorter ones are padded with NaN).
	Series []Series
	// Width and Height of the viewBox in pixels; 0 means 640 by 220. The SVG scales to its
	// container's width. A legend too wide for one row adds 22 px a row to the height.
	Width, Height int
}

const (
	marginLeft   = 56
	marginRight  = 118 // room for the direct labels
	marginTop    = 30
	marginBottom = 44 // tick labels and the axis caption
	legendHeight = 22
)

// dashes, markers and fills tell series apart without colour, in series order (then again).
var (
	dashes  = []string{"", "7 4", "2 3", "10 3 2 3"}
	markers = []string{"circle", "square", "triangle", "diamond"}
	inks    = []string{"#1f4e8c", "#b03a2e", "#3d7a3d", "#7a4f9a", "#8a6d1e", "#4a4a4a"}
)

// Render returns the chart as an <svg> element, ready to embed in HTML.
func Render(c Chart) string {
	if c.Width <= 0 {
		c.Width = 640
	}
	if c.Height <= 0 {
		c.Height = 220
	}
	if c.Step <= 0 {
		c.Step = time.Minute
	}
	c.Start = c.Start.UTC()
	n := 0
	for _, s := range c.Series {
		n = max(n, len(s.Values))
	}
	val := func(s Series, i int) float64 {
		if i < len(s.Values) {
			return s.Values[i]
		}
		return math.NaN()
	}
	// The y range: from 0 to a round number above the highest value (or stack).
	top := 0.0
	for i := range n {
		sum := 0.0
		for _, s := range c.Series {
			v := val(s, i)
			if math.IsNaN(v) {
				continue
			}
			if c.Kind == StackedBars {
				sum += v
			} else {
				top = max(top, v)
			}
		}
		top = max(top, sum)
	}
	ticks := yTicks(top, c.Unit)
	ymax := ticks[len(ticks)-1]

	w, h := float64(c.Width), float64(c.Height)
	x0, x1 := float64(marginLeft), w-marginRight
	y0, y1 := h-marginBottom-legendHeight, float64(marginTop) // bottom, top of the plot area
	// The legend wraps onto more rows when its entries are wider than the chart: the SVG
	// grows by a row each, the plot area keeps its size.
	legend := layoutLegend(c.Series, x0, w-8)
	rows := 1
	if len(legend) > 0 {
		rows = legend[len(legend)-1].row + 1
	}
	c.Height += (rows - 1) * legendHeight
	bw := (x1 - x0) / float64(max(n, 1))
	xAt := func(i int) float64 { return x0 + bw*(float64(i)+0.5) }
	yAt := func(v float64) float64 { return y0 - (y0-y1)*v/ymax }
	end := c.Start.Add(time.Duration(n) * c.Step)

	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		c.Width, c.Height, esc(summary(c, n, end)))
	p("\n<title>%s</title>\n", esc(c.Title))
	if c.Kind == StackedBars {
		p("<defs>")
		for i := range c.Series {
			p("%s", pattern(c.ID, i))
		}
		p("</defs>\n")
	}
	p(`<text x="%d" y="16" font-size="13" font-weight="600" fill="#222">%s</text>`+"\n", marginLeft, esc(c.Title))

	// Grid and y axis.
	for _, t := range ticks {
		y := yAt(t)
		p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#ccc" stroke-width="1"/>`, f(x0), f(y), f(x1), f(y))
		p(`<text x="%s" y="%s" text-anchor="end" fill="#333">%s</text>`+"\n", f(x0-6), f(y+4), esc(format(t, c.Unit)))
	}
	// x axis: ticks at round times, labelled in UTC.
	p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333" stroke-width="1"/>`+"\n", f(x0), f(y0), f(x1), f(y0))
	span := end.Sub(c.Start)
	every, layout := xTickStep(span)
	for t := c.Start.Truncate(every); !t.After(end); t = t.Add(every) {
		if t.Before(c.Start) {
			continue
		}
		x := x0 + (x1-x0)*float64(t.Sub(c.Start))/float64(max(span, 1))
		p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333"/>`, f(x), f(y0), f(x), f(y0+4))
		p(`<text x="%s" y="%s" text-anchor="middle" fill="#333">%s</text>`+"\n", f(x), f(y0+16), esc(t.Format(layout)))
	}
	p(`<text x="%s" y="%s" text-anchor="middle" fill="#555">%s</text>`+"\n", f((x0+x1)/2), f(y0+31),
		esc(fmt.Sprintf("time (UTC), %s per %s", unitWord(c), stepWord(c.Step))))

	// The data.
	switch c.Kind {
	case StackedBars:
		for i := range n {
			base := 0.0
			for k, s := range c.Series {
				v := val(s, i)
				if math.IsNaN(v) || v <= 0 {
					continue
				}
				yt, yb := yAt(base+v), yAt(base)
				p(`<rect x="%s" y="%s" width="%s" height="%s" fill="url(#%s)" stroke="#222" stroke-width="0.5"/>`,
					f(x0+bw*float64(i)+bw*0.1), f(yt), f(bw*0.8), f(yb-yt), patternID(c.ID, k))
				base += v
			}
		}
		b.WriteString("\n")
	default:
		for k, s := range c.Series {
			ink := inks[k%len(inks)]
			var d strings.Builder
			pen := false
			for i := range n {
				v := val(s, i)
				if math.IsNaN(v) {
					pen = false
					continue
				}
				cmd := "L"
				if !pen {
					cmd = "M"
				}
				fmt.Fprintf(&d, "%s%s %s ", cmd, f(xAt(i)), f(yAt(v)))
				pen = true
			}
			dash := ""
			if ds := dashes[k%len(dashes)]; ds != "" {
				dash = ` stroke-dasharray="` + ds + `"`
			}
			p(`<path d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.TrimSpace(d.String()), ink, dash)
			// Markers, at most about 24 per series so that they stay apart.
			every := max(1, n/24)
			for i := range n {
				if v := val(s, i); !math.IsNaN(v) && (i%every == 0 || i == n-1) {
					p("%s", marker(markers[k%len(markers)], xAt(i), yAt(v), ink))
				}
			}
			b.WriteString("\n")
		}
	}
	// Direct labels at each series' last known value (lines) or the last bar (bars), nudged
	// apart so they do not overlap.
	labels := directLabels(c, n, val, yAt, y0, y1)
	for _, l := range labels {
		if t := shorten(l.text, labelChars); t != l.text { // the legend has the whole name
			p(`<text x="%s" y="%s" fill="#222">%s<title>%s</title></text>`+"\n", f(x1+6), f(l.y+4), esc(t), esc(l.text))
		} else {
			p(`<text x="%s" y="%s" fill="#222">%s</text>`+"\n", f(x1+6), f(l.y+4), esc(t))
		}
	}
	// One hover target per bucket, with its values.
	for i := range n {
		from := c.Start.Add(time.Duration(i) * c.Step)
		parts := make([]string, 0, len(c.Series))
		for _, s := range c.Series {
			parts = append(parts, s.Name+" "+valueText(val(s, i), c.Unit))
		}
		p(`<rect x="%s" y="%s" width="%s" height="%s" fill="transparent"><title>%s</title></rect>`+"\n",
			f(x0+bw*float64(i)), f(y1), f(bw), f(y0-y1),
			esc(fmt.Sprintf("%s–%s UTC: %s", from.Format(tipLayout(c.Step)), from.Add(c.Step).Format("15:04"), strings.Join(parts, ", "))))
	}
	// The legend: a sample of each series' line or fill, and its name.
	for k, s := range c.Series {
		x, ly := legend[k].x, h-legendHeight+4+float64(legend[k].row*legendHeight)
		if c.Kind == StackedBars {
			p(`<rect x="%s" y="%s" width="16" height="10" fill="url(#%s)" stroke="#222" stroke-width="0.5"/>`, f(x), f(ly-9), patternID(c.ID, k))
		} else {
			ink := inks[k%len(inks)]
			dash := ""
			if ds := dashes[k%len(dashes)]; ds != "" {
				dash = ` stroke-dasharray="` + ds + `"`
			}
			p(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`, f(x), f(ly-4), f(x+22), f(ly-4), ink, dash)
			p("%s", marker(markers[k%len(markers)], x+11, ly-4, ink))
		}
		p(`<text x="%s" y="%s" fill="#222">%s</text>`+"\n", f(x+28), f(ly), esc(s.Name))
	}
	b.WriteString("</svg>")
	return b.String()
}

// place is where a legend entry goes: its left edge and its row.
type place struct {
	x   float64
	row int
}

// layoutLegend places the legend's entries left to right from left, wrapping before right.
// An entry is a 22 px sample, a gap and its name (at most about 7 px a character at 11 px).
func layoutLegend(series []Series, left, right float64) []place {
	out := make([]place, len(series))
	x, row := left, 0
	for k, s := range series {
		wide := 28 + 7*float64(len([]rune(s.Name)))
		if x > left && x+wide > right {
			x, row = left, row+1
		}
		out[k] = place{x: x, row: row}
		x += wide + 18
	}
	return out
}

// labelChars is how many characters of a name fit in the right margin as a direct label.
const labelChars = 17

// shorten cuts s to n characters, the last an ellipsis, when it is longer.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

type label struct {
	y    float64
	text string
}

// directLabels places each series' name beside its last value, at least 12 px apart.
func directLabels(c Chart, n int, val func(Series, int) float64, yAt func(float64) float64, y0, y1 float64) []label {
	var out []label
	base := 0.0
	for _, s := range c.Series {
		last := math.NaN()
		for i := n - 1; i >= 0; i-- {
			if v := val(s, i); !math.IsNaN(v) {
				last = v
				break
			}
		}
		var y float64
		switch {
		case c.Kind == StackedBars:
			v := val(s, n-1)
			if math.IsNaN(v) {
				v = 0
			}
			y = yAt(base + v/2)
			base += v
		case math.IsNaN(last):
			continue
		default:
			y = yAt(last)
		}
		out = append(out, label{y: y, text: s.Name})
	}
	// Sort by y (insertion sort: a handful of labels), then push apart downwards and back up
	// from the bottom.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].y < out[j-1].y; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	for i := 1; i < len(out); i++ {
		out[i].y = max(out[i].y, out[i-1].y+12)
	}
	for i := len(out) - 1; i >= 0; i-- {
		lim := y0
		if i < len(out)-1 {
			lim = out[i+1].y - 12
		}
		out[i].y = max(min(out[i].y, lim), y1)
	}
	return out
}

// summary is the aria-label: what the chart shows, over when, and each series' figures.
func summary(c Chart, n int, end time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s to %s UTC, per %s.", c.Title, c.Start.Format("2006-01-02 15:04"), end.Format("2006-01-02 15:04"), stepWord(c.Step))
	for _, s := range c.Series {
		total, peak, last, known := 0.0, math.NaN(), math.NaN(), 0
		for i := range min(n, len(s.Values)) {
			v := s.Values[i]
			if math.IsNaN(v) {
				continue
			}
			known++
			total += v
			if math.IsNaN(peak) || v > peak {
				peak = v
			}
			last = v
		}
		switch {
		case known == 0:
			fmt.Fprintf(&b, " %s: no data.", s.Name)
		case s.Gauge:
			fmt.Fprintf(&b, " %s: peak %s, last %s.", s.Name, valueText(peak, c.Unit), valueText(last, c.Unit))
		default:
			fmt.Fprintf(&b, " %s: %s in total, peak %s.", s.Name, valueText(total, c.Unit), valueText(peak, c.Unit))
		}
	}
	return b.String()
}

// yTicks returns 0 and round values up to at least top: 4 or 5 ticks in all.
func yTicks(top float64, u Unit) []float64 {
	if top <= 0 || math.IsNaN(top) || math.IsInf(top, 0) {
		top = 1
	}
	var step float64
	if u == Seconds && top >= 60 {
		for _, s := range []float64{60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400} {
			step = s
			if top/s <= 4 {
				break
			}
		}
		for top/step > 4 {
			step *= 2
		}
	} else {
		raw := top / 4
		mag := math.Pow(10, math.Floor(math.Log10(raw)))
		step = 10 * mag
		for _, m := range []float64{1, 2, 2.5, 5, 10} {
			if m*mag >= raw {
				step = m * mag
				break
			}
		}
		if step < 1 { // no fractions of a count or of a second

			step = 1
		}
	}
	var out []float64
	for v := 0.0; ; v += step {
		out = append(out, v)
		if v >= top {
			return out
		}
	}
}

// xTickStep picks the tick interval and label layout for a span of time: about 4 to 8 ticks.
func xTickStep(span time.Duration) (time.Duration, string) {
	steps := []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour,
		14 * 24 * time.Hour, 28 * 24 * time.Hour}
	for _, s := range steps {
		if span/s <= 7 {
			if s >= 24*time.Hour {
				return s, "Jan 2"
			}
			if span > 24*time.Hour {
				return s, "Jan 2 15:04"
			}
			return s, "15:04"
		}
	}
	return 56 * 24 * time.Hour, "Jan 2 2006"
}

func tipLayout(step time.Duration) string {
	if step >= 24*time.Hour {
		return "2006-01-02"
	}
	return "2006-01-02 15:04"
}

func unitWord(c Chart) string {
	if c.Unit == Seconds {
		return "age"
	}
	return "count"
}

// stepWord says a bucket's length as people do: "minute", "15 minutes", "hour", "day".
func stepWord(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "minute"
	case d == time.Hour:
		return "hour"
	case d == 24*time.Hour:
		return "day"
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + " minutes"
	}
	return d.String()
}

// format writes v as the y axis does: counts with k and M (1.2k, 3M), seconds as a duration
// (45s, 2m30s, 1h5m).
func format(v float64, u Unit) string {
	if u == Seconds {
		d := time.Duration(math.Round(v)) * time.Second
		switch {
		case d < time.Minute:
			return strconv.Itoa(int(d/time.Second)) + "s"
		case d < time.Hour:
			return pair(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
		default:
			return pair(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
		}
	}
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e3:
		return trim(v/1e3) + "k"
	}
	return trim(v)
}

// pair writes "2m30s", or "2m" when the second part is 0.
func pair(a int, au string, b int, bu string) string {
	if b == 0 {
		return strconv.Itoa(a) + au
	}
	return strconv.Itoa(a) + au + strconv.Itoa(b) + bu
}

// FormatCount writes a count as the charts do: 950, 1.2k, 3M.
func FormatCount(v float64) string { return format(v, Count) }

func valueText(v float64, u Unit) string {
	if math.IsNaN(v) {
		return "unknown"
	}
	return format(v, u)
}

// trim writes v with at most one decimal, without a trailing ".0".
func trim(v float64) string {
	s := strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0")
}

// f writes a coordinate with at most one decimal.
func f(v float64) string { return trim(v) }

func esc(s string) string { return html.EscapeString(s) }

func patternID(chart string, k int) string { return "p-" + chart + "-" + strconv.Itoa(k) }

// pattern is the k-th fill: solid, hatched, dotted, cross-hatched, … each in its own ink, so
// that bars differ in print and to people who do not tell the colours apart.
func pattern(chart string, k int) string {
	ink := inks[k%len(inks)]
	id := patternID(chart, k)
	open := `<pattern id="` + id + `" width="6" height="6" patternUnits="userSpaceOnUse">`
	switch k % 6 {
	case 0:
		return open + `<rect width="6" height="6" fill="` + ink + `"/></pattern>`
	case 1:
		return open + `<rect width="6" height="6" fill="#fff"/><path d="M-1 1l2-2M0 6l6-6M5 7l2-2" stroke="` + ink + `" stroke-width="1.6"/></pattern>`
	case 2:
		return open + `<rect width="6" height="6" fill="#fff"/><circle cx="3" cy="3" r="1.4" fill="` + ink + `"/></pattern>`
	case 3:
		return open + `<rect width="6" height="6" fill="#fff"/><path d="M0 3h6M3 0v6" stroke="` + ink + `" stroke-width="1.2"/></pattern>`
	case 4:
		return open + `<rect width="6" height="6" fill="#fff"/><path d="M-1 5l2 2M0 0l6 6M5 -1l2 2" stroke="` + ink + `" stroke-width="1.6"/></pattern>`
	default:
		return open + `<rect width="6" height="6" fill="#eee"/><path d="M0 1.5h6" stroke="` + ink + `" stroke-width="1"/></pattern>`
	}
}

// marker draws a small shape centred on (x, y).
func marker(shape string, x, y float64, ink string) string {
	switch shape {
	case "square":
		return fmt.Sprintf(`<rect x="%s" y="%s" width="6" height="6" fill="#fff" stroke="%s" stroke-width="1.5"/>`, f(x-3), f(y-3), ink)
	case "triangle":
		return fmt.Sprintf(`<path d="M%s %sl3.5 6h-7z" fill="%s"/>`, f(x), f(y-3.5), ink)
	case "diamond":
		return fmt.Sprintf(`<path d="M%s %sl3.5 3.5l-3.5 3.5l-3.5 -3.5z" fill="#fff" stroke="%s" stroke-width="1.5"/>`, f(x), f(y-3.5), ink)
	default:
		return fmt.Sprintf(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`, f(x), f(y), ink)
	}
}
