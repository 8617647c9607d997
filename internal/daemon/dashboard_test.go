package daemon

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardQueriesExistingMetrics parses deploy/grafana's dashboard
// and checks every ferry_ metric its queries (panels and variables) use is
// one the daemon registers, so a renamed metric cannot leave a dashboard
// panel silently empty.
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/ferry-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	m := NewMetrics()
	// Vectors show in a scrape only once they have a series.
	m.setCatalogs([]CatalogState{{Name: "c", Image: "r/c@sha256:0"}})
	m.duration.Observe(1)
	registered, err := m.Names()
	if err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`\bferry_[a-z_]+\b`)
	used := 0
	check := func(where, expr string) {
		for _, name := range metric.FindAllString(expr, -1) {
			used++
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && registered[b] {
					base = b
				}
			}
			if !registered[base] {
				t.Errorf("%s queries %s, which Ferry does not export", where, name)
			}
		}
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			check("variable", s)
		}
	}
	// Every metric the issue asks the dashboard to show is on it.
	for _, want := range []string{"ferry_reconcile_total", "ferry_reconcile_duration_seconds_bucket", "ferry_bytes_copied_total", "ferry_images_copied_total", "ferry_git_push_total", "ferry_catalog_info"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	if used == 0 {
		t.Fatal("no ferry_ metric found in the dashboard's queries")
	}
}
