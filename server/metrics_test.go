package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"depot/server/api"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics GETs /metrics and parses the text format.
func (e *env) scrapeMetrics(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := do(t, "GET", e.sledURL+"/metrics", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric returns the sample of family name with exactly these labels.
func metric(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no sample %s%v", name, labels)
	return nil
}

func TestServer_Metrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMetrics())
	ctx := context.Background()
	b, d := blob(t, 100<<10)
	if _, err := e.sled.PutArtifact(ctx, d, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	rc, _, err := e.depot.GetArtifact(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	_, other := blob(t, 1)
	if _, err := e.sled.PutArtifact(ctx, other, bytes.NewReader(b), int64(len(b))); !errors.Is(err, api.ErrHashMismatch) {
		t.Fatalf("mismatched put: %v", err)
	}
	// The request metrics are recorded after the answer is out.
	e.waitLog(t, `method=PUT path=/artifacts/`+other.String()+` status=400`)

	fams := e.scrapeMetrics(t)
	const putRoute, getRoute = "/artifacts/:sha256", "/artifact/sha256/:sha256"
	for _, c := range []struct {
		api, route, method, code string
	}{
		{"sled", putRoute, "PUT", "200"},
		{"sled", putRoute, "PUT", "400"},
		{"depot", getRoute, "GET", "200"},
	} {
		m := metric(t, fams, "depot_http_requests_total", map[string]string{"api": c.api, "route": c.route, "method": c.method, "code": c.code})
		if v := m.GetCounter().GetValue(); v != 1 {
			t.Errorf("requests %v = %v, want 1", c, v)
		}
	}
	if h := metric(t, fams, "depot_http_request_duration_seconds", map[string]string{"api": "sled", "route": putRoute, "method": "PUT"}).GetHistogram(); h.GetSampleCount() != 2 {
		t.Errorf("PUT latency count %d, want 2", h.GetSampleCount())
	}
	if h := metric(t, fams, "depot_http_request_duration_seconds", map[string]string{"api": "depot", "route": getRoute, "method": "GET"}).GetHistogram(); h.GetSampleCount() != 1 {
		t.Errorf("GET latency count %d, want 1", h.GetSampleCount())
	}
	if v := metric(t, fams, "depot_http_request_bytes_total", map[string]string{"api": "sled", "route": putRoute}).GetCounter().GetValue(); v != float64(2*len(b)) {
		t.Errorf("request bytes %v, want %d", v, 2*len(b))
	}
	if v := metric(t, fams, "depot_http_response_bytes_total", map[string]string{"api": "depot", "route": getRoute}).GetCounter().GetValue(); v != float64(len(b)) {
		t.Errorf("response bytes %v, want %d", v, len(b))
	}
	// Counted once, though the error handler sees the error three times.
	if v := metric(t, fams, "depot_errors_total", map[string]string{"code": "HASH_MISMATCH"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("depot_errors_total{code=HASH_MISMATCH} = %v, want 1", v)
	}
	// Scrape-time sources.
	if v := metric(t, fams, "depot_mirror_artifacts", map[string]string{"mirror": e.mirrors[0]}).GetGauge().GetValue(); v != 1 {
		t.Errorf("mirror artifacts %v, want 1", v)
	}
	if _, ok := fams["depot_config_generation"]; ok {
		t.Errorf("depot_config_generation present on an unmanaged sled")
	}
}

func TestServer_Metrics_Absent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "GET", e.sledURL+"/metrics", nil)
	wantError(t, resp, body, 404, "NOT_FOUND")
}
