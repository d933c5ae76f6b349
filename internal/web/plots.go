package web

import (
	"cmp"
	"context"
	"html/template"
	"math"
	"slices"
	"time"

	"github.com/auditstream/auditstream/internal/delivery"
	"github.com/auditstream/auditstream/internal/plot"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// chart is one plot on a page: its SVG (rendered by package plot, which escapes every text it
// writes) and an id to link to.
type chart struct {
	ID  string
	SVG template.HTML
}

// deliveryCharts plots a destination's history: deliveries and failures, and its backlog,
// over the last hour (per minute) and the last day (per 15 minutes). nil when the engine keeps
// no history.
func (u *UI) deliveryCharts(d streamconfig.Destination) []chart {
	h, ok := u.opts.Streams.History(d)
	if !ok {
		return nil
	}
	var byRange [2][]chart // the hour's, the day's
	for k, r := range []struct {
		id, span string
		samples  []delivery.Sample
		step     time.Duration
	}{{"hour", "last hour", h.Hour, time.Minute}, {"day", "last day", h.Day, 15 * time.Minute}} {
		if len(r.samples) == 0 {
			continue
		}
		n := len(r.samples)
		delivered, failed, pending, age := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		for i, s := range r.samples {
			delivered[i], failed[i] = float64(s.Delivered), float64(s.Failed)
			pending[i], age[i] = math.NaN(), math.NaN() // unknown: nobody read the backlog then
			if s.Pending >= 0 {
				pending[i], age[i] = float64(s.Pending), s.OldestAge.Seconds()
			}
		}
		start := r.samples[0].Start
		byRange[k] = append(byRange[k],
			chart{ID: "plot-deliveries-" + r.id, SVG: svg(plot.Chart{ID: "deliveries-" + r.id, Title: "Deliveries and failures, " + r.span,
				Kind: plot.Lines, Start: start, Step: r.step,
				Series: []plot.Series{{Name: "delivered", Values: delivered}, {Name: "failed", Values: failed}}})},
			chart{ID: "plot-lag-" + r.id, SVG: svg(plot.Chart{ID: "lag-" + r.id, Title: "Pending events, " + r.span,
				Kind: plot.Lines, Start: start, Step: r.step,
				Series: []plot.Series{{Name: "pending", Values: pending, Gauge: true}}})},
			chart{ID: "plot-age-" + r.id, SVG: svg(plot.Chart{ID: "age-" + r.id, Title: "Oldest undelivered event's age, " + r.span,
				Kind: plot.Lines, Unit: plot.Seconds, Start: start, Step: r.step,
				Series: []plot.Series{{Name: "oldest", Values: age, Gauge: true}}})},
		)
	}
	// Side by side: each chart of the last hour beside the same of the last day.
	var out []chart
	for i := range max(len(byRange[0]), len(byRange[1])) {
		for _, cs := range byRange {
			if i < len(cs) {
				out = append(out, cs[i])
			}
		}
	}
	return out
}

// svg marks a chart's SVG as safe HTML: package plot escapes every text it writes.
func svg(c plot.Chart) template.HTML { return template.HTML(plot.Render(c)) }

// eventVolumes counts events per time bucket and type (store.Store). The events page shows
// a chart when its Events have it.
type eventVolumes interface {
	EventVolume(ctx context.Context, p store.EventVolumeParams) ([]store.EventVolume, error)
}

const (
	volumeTypes   = 5                   // the most frequent types are stacked by name, the others as "other"
	defaultVolume = 7 * 24 * time.Hour  // the range shown when the filter sets none
	maxBars       = 60                  // at most this many bars
	minBarStep    = time.Minute         // the shortest bar
	volumeOther   = "other event types" // the rest
)

// barSteps are the bar lengths the volume chart picks from: the shortest that needs at most
// maxBars bars.
var barSteps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour,
	12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 28 * 24 * time.Hour, 91 * 24 * time.Hour, 364 * 24 * time.Hour}

// volumeChart plots the events p selects per time bucket, the most frequent types stacked and
// the others as one, over p's time range (up to now, over the last 7 days when p sets none).
// The store counts them with p's filters, so that the chart shows what the table lists.
func (u *UI) volumeChart(ctx context.Context, p store.EventListParams) (*chart, error) {
	ev, ok := u.opts.Events.(eventVolumes)
	if !ok {
		return nil, nil
	}
	end := u.now().UTC()
	if !p.CreatedBefore.IsZero() && p.CreatedBefore.Before(end) {
		end = p.CreatedBefore.Add(time.Millisecond) // inclusive
	}
	start := end.Add(-defaultVolume)
	if !p.CreatedAfter.IsZero() {
		start = p.CreatedAfter.UTC()
	}
	if !start.Before(end) {
		start = end.Add(-minBarStep)
	}
	step := barSteps[len(barSteps)-1]
	for _, s := range barSteps {
		if end.Sub(start.Truncate(s)) <= time.Duration(maxBars)*s {
			step = s
			break
		}
	}
	first := start.Truncate(step)
	n := int((end.Sub(first) + step - 1) / step)
	n = min(max(n, 1), store.MaxVolumeBuckets)
	rows, err := ev.EventVolume(ctx, store.EventVolumeParams{Filter: p, Start: first, Step: step, Buckets: n})
	if err != nil {
		return nil, err
	}
	totals := map[string]int64{}
	for _, r := range rows {
		totals[r.EventType] += r.Count
	}
	types := make([]string, 0, len(totals))
	for t := range totals {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b string) int { return cmp.Or(cmp.Compare(totals[b], totals[a]), cmp.Compare(a, b)) })
	top := types[:min(len(types), volumeTypes)]
	series := make([]plot.Series, len(top), len(top)+1)
	index := map[string]int{}
	for i, t := range top {
		series[i] = plot.Series{Name: t, Values: make([]float64, n)}
		index[t] = i
	}
	if len(types) > len(top) {
		series = append(series, plot.Series{Name: volumeOther, Values: make([]float64, n)})
	}
	for _, r := range rows {
		i, ok := index[r.EventType]
		if !ok {
			i = len(series) - 1
		}
		if r.Bucket >= 0 && r.Bucket < n {
			series[i].Values[r.Bucket] += float64(r.Count)
		}
	}
	if len(series) == 0 {
		series = []plot.Series{{Name: "events", Values: make([]float64, n)}}
	}
	return &chart{ID: "plot-volume", SVG: svg(plot.Chart{ID: "volume", Title: "Events by type", Kind: plot.StackedBars, Start: first, Step: step,
		Series: series})}, nil
}
