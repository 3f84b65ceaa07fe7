package metrics_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"depot/depot"
	"depot/server/metrics"
	"depot/store"
)

const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// scrape serves GET /metrics through m.Handler and parses the text format.
func scrape(t testing.TB, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type = %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the metric of family name whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f, ok := fams[name]
	if !ok {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value returns a counter's or gauge's value, failing if it is absent.
func value(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := sample(fams, name, labels)
	if !ok {
		t.Fatalf("no sample %s%v", name, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("%s%v is neither counter nor gauge", name, labels)
	return 0
}

// newEcho returns an echo instance with the metrics middleware for api and
// an error handler that, like depot's, ignores committed responses; calls
// counts its invocations.
func newEcho(m *metrics.Metrics, api string, calls *int) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		*calls++
		if c.Response().Committed {
			return
		}
		code := http.StatusInternalServerError
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
		}
		c.JSON(code, map[string]string{"error_code": "X"})
	}
	e.Use(m.Middleware(api))
	return e
}

func serve(e *echo.Echo, method, target string, body io.Reader) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(method, target, body))
	return rec
}

func TestMiddleware_PutAndGet(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	var calls int
	e := newEcho(m, "sled", &calls)
	payload := strings.Repeat("x", 4096+7)
	e.PUT("/artifacts/:sha256", func(c echo.Context) error {
		n, err := io.Copy(io.Discard, c.Request().Body)
		if err != nil {
			return err
		}
		if n != int64(len(payload)) {
			t.Errorf("handler read %d bytes", n)
		}
		return c.JSON(http.StatusOK, map[string]int{"datasets": 2, "successful_writes": 2})
	})
	var got string
	e.GET("/artifacts/:sha256", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/octet-stream", []byte(payload[:1000]))
	})

	if rec := serve(e, http.MethodPut, "/artifacts/"+hash+"?generation=3", strings.NewReader(payload)); rec.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	rec := serve(e, http.MethodGet, "/artifacts/"+hash, nil)
	got = rec.Body.String()
	if rec.Code != http.StatusOK || len(got) != 1000 {
		t.Fatalf("GET: %d, %d bytes", rec.Code, len(got))
	}

	fams := scrape(t, m)
	route := "/artifacts/:sha256"
	if v := value(t, fams, "depot_http_requests_total", map[string]string{"api": "sled", "route": route, "method": "PUT", "code": "200"}); v != 1 {
		t.Errorf("PUT requests = %v, want 1", v)
	}
	if v := value(t, fams, "depot_http_requests_total", map[string]string{"api": "sled", "route": route, "method": "GET", "code": "200"}); v != 1 {
		t.Errorf("GET requests = %v, want 1", v)
	}
	if v := value(t, fams, "depot_http_request_bytes_total", map[string]string{"api": "sled", "route": route}); v != float64(len(payload)) {
		t.Errorf("request bytes = %v, want %d", v, len(payload))
	}
	putResp := len(`{"datasets":2,"successful_writes":2}` + "\n")
	if v := value(t, fams, "depot_http_response_bytes_total", map[string]string{"api": "sled", "route": route}); v != float64(1000+putResp) {
		t.Errorf("response bytes = %v, want %d", v, 1000+putResp)
	}
	for _, method := range []string{"PUT", "GET"} {
		h, ok := sample(fams, "depot_http_request_duration_seconds", map[string]string{"api": "sled", "route": route, "method": method})
		if !ok || h.GetHistogram().GetSampleCount() != 1 {
			t.Errorf("%s duration histogram: %v", method, h)
		}
	}
	for _, f := range fams["depot_http_requests_total"].GetMetric() {
		for _, l := range f.GetLabel() {
			if strings.Contains(l.GetValue(), hash) {
				t.Errorf("raw URL leaked into label %s=%q", l.GetName(), l.GetValue())
			}
		}
	}
	if calls != 0 {
		t.Errorf("error handler called %d times for successful requests", calls)
	}
}

func TestMiddleware_Error_StatusFromErrorHandler(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	var calls int
	e := newEcho(m, "sled", &calls)
	e.PUT("/artifacts/:sha256", func(c echo.Context) error {
		io.CopyN(io.Discard, c.Request().Body, 10) // reads part of the body, then fails
		return echo.NewHTTPError(http.StatusBadRequest, "hash mismatch")
	})

	rec := serve(e, http.MethodPut, "/artifacts/"+hash, strings.NewReader(strings.Repeat("y", 100)))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("PUT: %d", rec.Code)
	}
	if calls != 2 {
		// Once from the middleware, once from echo (which must be ignored).
		t.Errorf("error handler called %d times, want 2", calls)
	}
	fams := scrape(t, m)
	if v := value(t, fams, "depot_http_requests_total", map[string]string{"route": "/artifacts/:sha256", "method": "PUT", "code": "400"}); v != 1 {
		t.Errorf("400 requests = %v, want 1", v)
	}
	if v := value(t, fams, "depot_http_request_bytes_total", map[string]string{"route": "/artifacts/:sha256"}); v != 10 {
		t.Errorf("request bytes = %v, want the 10 read", v)
	}
	if v := value(t, fams, "depot_http_response_bytes_total", map[string]string{"route": "/artifacts/:sha256"}); v != float64(rec.Body.Len()) {
		t.Errorf("response bytes = %v, want %d", v, rec.Body.Len())
	}
}

func TestMiddleware_UnmatchedRoute(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	var calls int
	e := newEcho(m, "depot", &calls)
	e.GET("/artifact/sha256/:sha256", func(c echo.Context) error { return c.NoContent(http.StatusOK) })

	for _, target := range []string{"/nothing/here", "/artifact/sha256", "/artifact/other"} {
		if rec := serve(e, http.MethodGet, target, nil); rec.Code != http.StatusNotFound {
			t.Fatalf("GET %s: %d", target, rec.Code)
		}
	}
	// A known path with the wrong method keeps its route template.
	if rec := serve(e, http.MethodPut, "/artifact/sha256/"+hash, strings.NewReader("z")); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", rec.Code)
	}

	fams := scrape(t, m)
	if v := value(t, fams, "depot_http_requests_total", map[string]string{"api": "depot", "route": "unmatched", "method": "GET", "code": "404"}); v != 3 {
		t.Errorf("unmatched = %v, want 3", v)
	}
	if v := value(t, fams, "depot_http_requests_total", map[string]string{"api": "depot", "route": "/artifact/sha256/:sha256", "method": "PUT", "code": "405"}); v != 1 {
		t.Errorf("405 = %v, want 1", v)
	}
	var routes []string
	for _, f := range fams["depot_http_requests_total"].GetMetric() {
		for _, l := range f.GetLabel() {
			if l.GetName() == "route" {
				routes = append(routes, l.GetValue())
			}
		}
	}
	sort.Strings(routes)
	if want := []string{"/artifact/sha256/:sha256", "unmatched"}; strings.Join(routes, " ") != strings.Join(want, " ") {
		t.Errorf("routes = %q, want %q", routes, want)
	}
}

func TestMiddleware_OddMethod(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	var calls int
	e := newEcho(m, "sled", &calls)
	serve(e, "BREW", "/coffee", nil)
	fams := scrape(t, m)
	if v := value(t, fams, "depot_http_requests_total", map[string]string{"route": "unmatched", "method": "OTHER"}); v != 1 {
		t.Errorf("OTHER = %v, want 1", v)
	}
}

func TestMetrics_ObserveError(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	want := `
# HELP depot_errors_total Error responses by error_code; HASH_MISMATCH counts bodies that did not hash to their name.
# TYPE depot_errors_total counter
depot_errors_total{code="HASH_MISMATCH"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "depot_errors_total"); err != nil {
		t.Errorf("before any error: %v", err)
	}
	m.ObserveError("HASH_MISMATCH")
	m.ObserveError("NOT_IN_CONFIG")
	m.ObserveError("NOT_IN_CONFIG")
	want = `
# HELP depot_errors_total Error responses by error_code; HASH_MISMATCH counts bodies that did not hash to their name.
# TYPE depot_errors_total counter
depot_errors_total{code="HASH_MISMATCH"} 1
depot_errors_total{code="NOT_IN_CONFIG"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "depot_errors_total"); err != nil {
		t.Error(err)
	}
	if v := value(t, scrape(t, m), "depot_errors_total", map[string]string{"code": "HASH_MISMATCH"}); v != 1 {
		t.Errorf("scraped HASH_MISMATCH = %v, want 1", v)
	}
}

func TestMetrics_ObserveActivation(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	m.ObserveActivation(1500 * time.Millisecond)
	m.ObserveActivation(20 * time.Millisecond)
	h, ok := sample(scrape(t, m), "depot_replication_activation_duration_seconds", nil)
	if !ok {
		t.Fatal("no activation histogram")
	}
	if got := h.GetHistogram(); got.GetSampleCount() != 2 || got.GetSampleSum() != 1.52 {
		t.Errorf("count %d sum %v, want 2 and 1.52", got.GetSampleCount(), got.GetSampleSum())
	}
}

func u64(v uint64) *uint64 { return &v }
func intp(v int) *int      { return &v }

// fakeSources returns fixed values for every source.
func fakeSources() metrics.Sources {
	started := time.Unix(1700000000, 0)
	return metrics.Sources{
		Mirrors: func() []store.MirrorStatus {
			return []store.MirrorStatus{
				{Path: "/m2a", Healthy: true, Artifacts: 12, Bytes: 1 << 30, Free: 5 << 30},
				{Path: "/m2b", Healthy: false, Artifacts: 11, Bytes: 1<<30 - 4096, Free: 0, LastError: "EIO"},
			}
		},
		Scrub: func() store.ScrubStatus {
			return store.ScrubStatus{Running: true, Verify: true, Artifacts: 12, Checked: 5, Bytes: 4096,
				Corrupt: 1, Repaired: 1, Passes: 3, TotalCorrupt: 2, TotalRepaired: 4, TotalFailed: 1}
		},
		Sled: func() depot.SledStatus {
			return depot.SledStatus{
				Generation: u64(7),
				Artifacts:  intp(12),
				Copies:     depot.CopyCounts{Running: 2, Limit: 4, Queued: 3, QueueLimit: 64, Succeeded: 30, Failed: 1, Rejected: 5},
				Reconciler: depot.ReconcileStatus{Passes: 9, TotalDeleted: 6, TotalFailed: 1},
			}
		},
		Replication: func() depot.ReplicationStatus {
			return depot.ReplicationStatus{
				Generation:  7,
				Activations: 42,
				Lifetime: depot.Counters{
					"put_config": {OK: 100},
					"list":       {OK: 99, Err: 1},
					"put":        {OK: 10, Err: 2},
					"copy":       {OK: 20, Err: 3},
					"ignored":    nil,
				},
				Last: &depot.Activation{Started: started, Finished: started.Add(2500 * time.Millisecond)},
			}
		},
		RepoStates: func() map[string]int {
			return map[string]int{depot.RepoComplete: 2, depot.RepoReplicating: 1}
		},
	}
}

func TestSources_All(t *testing.T) {
	m := metrics.New(fakeSources())
	want := `
# HELP depot_mirror_healthy 1 if the mirror is healthy, 0 if it is degraded.
# TYPE depot_mirror_healthy gauge
depot_mirror_healthy{mirror="/m2a"} 1
depot_mirror_healthy{mirror="/m2b"} 0
# HELP depot_mirror_artifacts Artifacts indexed on the mirror.
# TYPE depot_mirror_artifacts gauge
depot_mirror_artifacts{mirror="/m2a"} 12
depot_mirror_artifacts{mirror="/m2b"} 11
# HELP depot_mirror_bytes Bytes of artifacts on the mirror.
# TYPE depot_mirror_bytes gauge
depot_mirror_bytes{mirror="/m2a"} 1.073741824e+09
depot_mirror_bytes{mirror="/m2b"} 1.073737728e+09
# HELP depot_mirror_free_bytes Free bytes on the mirror's file system.
# TYPE depot_mirror_free_bytes gauge
depot_mirror_free_bytes{mirror="/m2a"} 5.36870912e+09
depot_mirror_free_bytes{mirror="/m2b"} 0
# HELP depot_scrub_running 1 while a scrub pass runs.
# TYPE depot_scrub_running gauge
depot_scrub_running 1
# HELP depot_scrub_checked Artifacts looked at by the current (or last) scrub pass.
# TYPE depot_scrub_checked gauge
depot_scrub_checked 5
# HELP depot_scrub_artifacts Artifacts the current (or last) scrub pass looks at.
# TYPE depot_scrub_artifacts gauge
depot_scrub_artifacts 12
# HELP depot_scrub_bytes Bytes re-hashed or copied by the current (or last) scrub pass.
# TYPE depot_scrub_bytes gauge
depot_scrub_bytes 4096
# HELP depot_scrub_passes_total Scrub passes finished since start-up.
# TYPE depot_scrub_passes_total counter
depot_scrub_passes_total 3
# HELP depot_scrub_corrupt_total Copies found corrupt (and removed) by finished scrub passes.
# TYPE depot_scrub_corrupt_total counter
depot_scrub_corrupt_total 2
# HELP depot_scrub_repaired_total Copies repaired from a good mirror by finished scrub passes.
# TYPE depot_scrub_repaired_total counter
depot_scrub_repaired_total 4
# HELP depot_scrub_failed_total Repairs that failed, or artifacts left without a good copy, in finished scrub passes.
# TYPE depot_scrub_failed_total counter
depot_scrub_failed_total 1
# HELP depot_config_generation Generation of the sled's artifact config; absent while the sled is unmanaged.
# TYPE depot_config_generation gauge
depot_config_generation 7
# HELP depot_config_artifacts Artifacts in the sled's config; absent while the sled is unmanaged.
# TYPE depot_config_artifacts gauge
depot_config_artifacts 12
# HELP depot_copies_running Copy-from-depot jobs running.
# TYPE depot_copies_running gauge
depot_copies_running 2
# HELP depot_copies_limit Copy-from-depot jobs allowed at once.
# TYPE depot_copies_limit gauge
depot_copies_limit 4
# HELP depot_copies_queued Accepted copy-from-depot jobs waiting for a running slot.
# TYPE depot_copies_queued gauge
depot_copies_queued 3
# HELP depot_copies_queue_limit Copy-from-depot jobs allowed to wait; one more is refused with TOO_MANY_COPIES.
# TYPE depot_copies_queue_limit gauge
depot_copies_queue_limit 64
# HELP depot_copies_total Copy-from-depot jobs since start-up by outcome (rejected: refused with TOO_MANY_COPIES).
# TYPE depot_copies_total counter
depot_copies_total{state="failed"} 1
depot_copies_total{state="rejected"} 5
depot_copies_total{state="succeeded"} 30
# HELP depot_reconciler_running 1 while a delete reconciler pass runs.
# TYPE depot_reconciler_running gauge
depot_reconciler_running 0
# HELP depot_reconciler_passes_total Delete reconciler passes since start-up.
# TYPE depot_reconciler_passes_total counter
depot_reconciler_passes_total 9
# HELP depot_reconciler_deleted_total Artifacts outside the config deleted by the reconciler since start-up.
# TYPE depot_reconciler_deleted_total counter
depot_reconciler_deleted_total 6
# HELP depot_reconciler_failed_total Reconciler deletions that failed since start-up.
# TYPE depot_reconciler_failed_total counter
depot_reconciler_failed_total 1
# HELP depot_replication_generation Catalog generation the coordinator replicates.
# TYPE depot_replication_generation gauge
depot_replication_generation 7
# HELP depot_replication_running 1 while a replication activation runs.
# TYPE depot_replication_running gauge
depot_replication_running 0
# HELP depot_replication_activations_total Replication activations since start-up.
# TYPE depot_replication_activations_total counter
depot_replication_activations_total 42
# HELP depot_replication_requests_total Requests the coordinator sent to sleds since start-up, by operation and result.
# TYPE depot_replication_requests_total counter
depot_replication_requests_total{op="copy",result="err"} 3
depot_replication_requests_total{op="copy",result="ok"} 20
depot_replication_requests_total{op="list",result="err"} 1
depot_replication_requests_total{op="list",result="ok"} 99
depot_replication_requests_total{op="put",result="err"} 2
depot_replication_requests_total{op="put",result="ok"} 10
depot_replication_requests_total{op="put_config",result="err"} 0
depot_replication_requests_total{op="put_config",result="ok"} 100
# HELP depot_replication_last_activation_duration_seconds Duration of the last finished replication activation.
# TYPE depot_replication_last_activation_duration_seconds gauge
depot_replication_last_activation_duration_seconds 2.5
# HELP depot_replication_last_activation_timestamp_seconds Unix time the last replication activation finished.
# TYPE depot_replication_last_activation_timestamp_seconds gauge
depot_replication_last_activation_timestamp_seconds 1.7000000025e+09
# HELP depot_repositories Repositories in the catalog by replication state.
# TYPE depot_repositories gauge
depot_repositories{state="complete"} 2
depot_repositories{state="durable"} 0
depot_repositories{state="replicating"} 1
`
	names := familyNames(want)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// The same values reach the HTTP handler.
	fams := scrape(t, m)
	if v := value(t, fams, "depot_mirror_healthy", map[string]string{"mirror": "/m2b"}); v != 0 {
		t.Errorf("scraped depot_mirror_healthy{mirror=/m2b} = %v, want 0", v)
	}
	if v := value(t, fams, "depot_mirror_free_bytes", map[string]string{"mirror": "/m2a"}); v != 5<<30 {
		t.Errorf("scraped depot_mirror_free_bytes{mirror=/m2a} = %v", v)
	}
	// The Go and process collectors are there too.
	names = []string{"go_goroutines"}
	if runtime.GOOS == "linux" {
		names = append(names, "process_start_time_seconds")
	}
	for _, name := range names {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

// familyNames returns the metric names declared with # TYPE in text.
func familyNames(text string) []string {
	var names []string
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
			names = append(names, f[2])
		}
	}
	return names
}

func TestSources_UnmanagedSled_NoGeneration(t *testing.T) {
	src := fakeSources()
	src.Sled = func() depot.SledStatus {
		return depot.SledStatus{Copies: depot.CopyCounts{Limit: 4}}
	}
	fams := scrape(t, metrics.New(src))
	for _, name := range []string{"depot_config_generation", "depot_config_artifacts"} {
		if f, ok := fams[name]; ok {
			t.Errorf("unmanaged sled has %s: %v", name, f)
		}
	}
	if v := value(t, fams, "depot_copies_limit", nil); v != 4 {
		t.Errorf("depot_copies_limit = %v, want 4", v)
	}
}

func TestSources_Nil_NoSamples(t *testing.T) {
	m := metrics.New(metrics.Sources{})
	fams := scrape(t, m)
	pushed := map[string]bool{ // present from the start
		"depot_errors_total": true, "depot_replication_activation_duration_seconds": true,
	}
	for name := range fams {
		if strings.HasPrefix(name, "depot_") && !pushed[name] {
			t.Errorf("nil sources produced %s", name)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go collector metrics")
	}
}

func TestSources_NoActivationYet(t *testing.T) {
	src := metrics.Sources{Replication: func() depot.ReplicationStatus {
		return depot.ReplicationStatus{Last: &depot.Activation{Started: time.Now()}} // still running
	}}
	fams := scrape(t, metrics.New(src))
	if _, ok := fams["depot_replication_last_activation_duration_seconds"]; ok {
		t.Error("duration of an unfinished activation reported")
	}
	if v := value(t, fams, "depot_replication_activations_total", nil); v != 0 {
		t.Errorf("activations = %v", v)
	}
}

func TestSources_BadMirrorPath_FailsOnlyThatMetric(t *testing.T) {
	src := metrics.Sources{
		Mirrors: func() []store.MirrorStatus {
			return []store.MirrorStatus{{Path: "/bad\xff", Healthy: true}, {Path: "/good", Healthy: true}}
		},
		Scrub: func() store.ScrubStatus { return store.ScrubStatus{Passes: 1} },
	}
	m := metrics.New(src)
	fams := scrape(t, m) // ContinueOnError: the scrape still succeeds
	if v := value(t, fams, "depot_scrub_passes_total", nil); v != 1 {
		t.Errorf("passes = %v", v)
	}
	if v := value(t, fams, "depot_mirror_healthy", map[string]string{"mirror": "/good"}); v != 1 {
		t.Errorf("good mirror = %v", v)
	}
}

func TestMetrics_Lint(t *testing.T) {
	m := metrics.New(fakeSources())
	var calls int
	e := newEcho(m, "sled", &calls)
	e.GET("/status", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	serve(e, http.MethodGet, "/status", nil)
	m.ObserveActivation(time.Second)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "depot_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestMetrics_Independent(t *testing.T) {
	a, b := metrics.New(metrics.Sources{}), metrics.New(metrics.Sources{})
	a.ObserveError("HASH_MISMATCH")
	if v := value(t, scrape(t, b), "depot_errors_total", map[string]string{"code": "HASH_MISMATCH"}); v != 0 {
		t.Errorf("second Metrics sees the first's error: %v", v)
	}
}
