package app

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
)

var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

// MetricNames returns the name of every metric a's registry describes, including vectors that
// have no series yet (a scrape of /metrics shows only those with a value).
func MetricNames(a *App) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		a.metrics.reg.Describe(ch)
		close(ch)
	}()
	var names []string
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}
