package plot_test

import (
	"encoding/xml"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/plot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var start = time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)

func charts() map[string]plot.Chart {
	nan := math.NaN()
	delivered := make([]float64, 60)
	failed := make([]float64, 60)
	for i := range delivered {
		delivered[i] = float64(1000 + 40*i)
		if i >= 20 && i < 30 {
			failed[i] = float64(300 * (i - 19))
			delivered[i] = 0
		}
	}
	pending := make([]float64, 60)
	for i := range pending {
		pending[i] = nan
		if i%5 == 0 {
			pending[i] = float64(i * 7)
		}
	}
	return map[string]plot.Chart{
		"lines": {ID: "hour", Title: "Deliveries and failures, last hour", Kind: plot.Lines, Start: start, Step: time.Minute,
			Series: []plot.Series{{Name: "delivered", Values: delivered}, {Name: "failed", Values: failed}}},
		"gaps": {ID: "lag", Title: "Pending events", Kind: plot.Lines, Start: start, Step: time.Minute,
			Series: []plot.Series{{Name: "pending", Values: pending, Gauge: true}}},
		"stacked": {ID: "types", Title: "Events by type", Kind: plot.StackedBars, Start: start, Step: 6 * time.Hour,
			Series: []plot.Series{
				{Name: "user_created", Values: []float64{5, 8, 2, 0, 12, 3, 1, 7}},
				{Name: "project_deleted", Values: []float64{1, 0, 4, 2, 2, 1, 0, 3}},
				{Name: "other", Values: []float64{2, 2, 2, 2, 2, 2, 2, 2}},
			}},
		"wrapped": {ID: "wrapped", Title: "Events by type", Kind: plot.StackedBars, Start: start, Step: 15 * time.Minute,
			Series: []plot.Series{
				{Name: "user_created", Values: []float64{8}}, {Name: "member_created", Values: []float64{6}},
				{Name: "project_created", Values: []float64{5}}, {Name: "user_blocked", Values: []float64{4}},
				{Name: "created_group_audit_event_streaming_destination", Values: []float64{3}}, {Name: "other event types", Values: []float64{4}},
			}},
		"empty": {ID: "empty", Title: "Nothing yet", Kind: plot.Lines, Start: start, Step: 15 * time.Minute,
			Series: []plot.Series{{Name: "delivered", Values: make([]float64, 96)}}},
	}
}

// TestRenderGolden compares each chart with its golden file (go test -update rewrites them),
// checks it is well-formed XML, and that it renders the same bytes twice.
func TestRenderGolden(t *testing.T) {
	t.Parallel()
	for name, c := range charts() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := plot.Render(c)
			require.Equal(t, got, plot.Render(c), "deterministic")
			d := xml.NewDecoder(strings.NewReader(got))
			for {
				_, err := d.Token()
				if err == io.EOF {
					break
				}
				require.NoError(t, err, "well-formed")
			}
			path := filepath.Join("testdata", name+".svg")
			if *update {
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(want), got)
		})
	}
}

func TestRenderAccessible(t *testing.T) {
	t.Parallel()
	c := charts()
	got := plot.Render(c["lines"])
	require.Contains(t, got, `role="img"`)
	require.Contains(t, got, `aria-label="Deliveries and failures, last hour, 2026-12-07 05:00 to 2026-12-07 06:00 UTC, per minute. delivered: 111k in total, peak 3.4k. failed: 16.5k in total, peak 3k."`)
	require.Contains(t, got, `<title>2026-12-07 05:20–05:21 UTC: delivered 0, failed 300</title>`)
	require.Contains(t, got, `stroke-dasharray="7 4"`, "the second series is dashed, not only another colour")
	require.Contains(t, got, `>05:30</text>`, "ticks in UTC")

	got = plot.Render(c["gaps"])
	require.Contains(t, got, "pending: peak 385, last 385.")
	require.Contains(t, got, "pending unknown", "a bucket without a sample says so")

	got = plot.Render(c["wrapped"])
	require.Contains(t, got, `viewBox="0 0 640 242"`, "the legend wraps onto a second row")
	require.Contains(t, got, `>created_group_au…<title>created_group_audit_event_streaming_destination</title></text>`, "a long direct label is cut, with the whole name on hover")

	got = plot.Render(c["stacked"])
	require.Contains(t, got, `fill="url(#p-types-1)"`)
	require.Contains(t, got, `>Dec 8 00:00</text>`, "day ticks over several days")
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "0", 950: "950", 1000: "1k", 1250: "1.3k", 2_500_000: "2.5M", 12.5: "12.5"} {
		require.Equal(t, want, plot.FormatCount(v), "%v", v)
	}
}
