package metrics_test

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"depot/depot"
	"depot/server/metrics"
)

// everyFamily is every metric family depotd can expose: every source set,
// a request, an error and an activation observed.
func everyFamily(t *testing.T) map[string]bool {
	t.Helper()
	src := fakeSources()
	repl := src.Replication
	src.Replication = func() depot.ReplicationStatus {
		r := repl()
		r.Sleds = []depot.SledState{{SledRecord: depot.SledRecord{ID: "sled-1"}, LastInventory: time.Now()}}
		return r
	}
	m := metrics.New(src)
	var calls int
	e := newEcho(m, "sled", &calls)
	e.GET("/status", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	serve(e, http.MethodGet, "/status", nil)
	m.ObserveError("SERVER_BUSY")
	m.ObserveActivation(time.Second)
	out := map[string]bool{}
	for name := range scrape(t, m) {
		out[name] = true
	}
	return out
}

var metricName = regexp.MustCompile(`\b(depot|process|go)_[a-z0-9_]+\b`)

// exists reports whether name is a family, or a histogram's or summary's
// series of one.
func exists(families map[string]bool, name string) bool {
	if families[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && families[base] {
			return true
		}
	}
	return false
}

func TestAlerts_EveryMetricExists(t *testing.T) {
	families := everyFamily(t)
	b, err := os.ReadFile("../../scripts/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts, exprs := 0, 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "- alert:") {
			alerts++
		}
		expr, ok := strings.CutPrefix(line, "expr:")
		if !ok {
			continue
		}
		exprs++
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("expression names no metric: %s", expr)
		}
		for _, n := range names {
			if !exists(families, n) {
				t.Errorf("alerts.yml names %s, which depotd does not expose", n)
			}
		}
	}
	if alerts < 5 || alerts != exprs {
		t.Errorf("%d alerts, %d expressions: want one expression per alert, at least 5", alerts, exprs)
	}
}

func TestDashboard_EveryMetricExists(t *testing.T) {
	families := everyFamily(t)
	b, err := os.ReadFile("../../scripts/grafana/depot.json")
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
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			names := metricName.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query names no metric: %s", p.Title, q.Expr)
			}
			for _, n := range names {
				if !exists(families, n) {
					t.Errorf("panel %q names %s, which depotd does not expose", p.Title, n)
				}
			}
		}
	}
}
