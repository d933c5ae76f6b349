package app_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/auditstream/auditstream/internal/app"
)

// grafanaVars stands in for the Grafana variables the dashboard's queries use, so that the
// queries parse as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$instance", ".*")

// labelValues is Grafana's label_values(metric, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// TestGrafanaDashboardNamesExportedMetrics parses every query of the shipped Grafana dashboard
// and Prometheus alert rules as PromQL and fails when one names a metric the running service
// does not export (a renamed metric would leave a panel or an alert silently empty).
func TestGrafanaDashboardNamesExportedMetrics(t *testing.T) {
	t.Parallel()
	s := start(t, "sqlite")
	exported := map[string]bool{}
	for _, n := range app.MetricNames(s.app) {
		exported[n] = true
	}
	require.Contains(t, exported, "auditstream_delivery_category_events_total", "the delivery engine's metrics are registered")
	known := func(name string) bool {
		if exported[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} { // histograms and summaries
			if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
				return true
			}
		}
		return false
	}
	p := parser.NewParser(parser.Options{})
	check := func(where, expr string) {
		t.Helper()
		e, err := p.ParseExpr(grafanaVars.Replace(expr))
		require.NoError(t, err, "%s: %s", where, expr)
		var names []string
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				names = append(names, vs.Name)
			}
			return nil
		})
		require.NotEmpty(t, names, "%s names no metric: %s", where, expr)
		for _, n := range names {
			require.True(t, known(n), "%s: %s is not a metric the service exports (%s)", where, n, expr)
		}
	}

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	b, err := os.ReadFile("../../deploy/grafana/auditstream.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &dash))
	queries := 0
	for _, panel := range dash.Panels {
		if panel.Type == "row" {
			continue
		}
		require.NotEmpty(t, panel.Targets, "panel %q has no query", panel.Title)
		for _, target := range panel.Targets {
			check("panel "+panel.Title, target.Expr)
			queries++
		}
	}
	require.GreaterOrEqual(t, queries, 20)
	for _, v := range dash.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue // the data source variable
		}
		m := labelValues.FindStringSubmatch(q["query"].(string))
		require.NotNil(t, m, "variable %s: %v", v.Name, q["query"])
		require.True(t, known(m[1]), "variable %s: %s is not exported", v.Name, m[1])
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err = os.ReadFile("../../deploy/prometheus/auditstream-alerts.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &rules))
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
			alerts = append(alerts, r.Alert)
		}
	}
	for _, want := range []string{"AuditstreamStoreLagGrowing", "AuditstreamOldestUndeliveredEvent", "AuditstreamDeadLetters"} {
		require.True(t, slices.Contains(alerts, want), "alert %s", want)
	}
}
