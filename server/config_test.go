package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"depot/server/api"
)

func gen(g uint64) *uint64 { return &g }

// putConfig puts a config of the given artifacts at generation g.
func (e *env) putConfig(t testing.TB, g uint64, ds ...api.Digest) {
	t.Helper()
	if err := e.sled.PutConfig(context.Background(), api.Config{Generation: g, Artifacts: ds}); err != nil {
		t.Fatalf("put config %d: %v", g, err)
	}
}

func TestServer_Config_Unmanaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.sled.GetConfig(context.Background())
	if !errors.Is(err, api.ErrNoConfig) {
		t.Fatalf("GetConfig on an unmanaged sled: %v, want ErrNoConfig", err)
	}
	resp, body := do(t, "GET", e.sledURL+"/artifacts-config", nil)
	wantError(t, resp, body, 404, "NO_CONFIG")
}

func TestServer_Config_GenerationRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, d1 := blob(t, 10)
	_, d2 := blob(t, 20)

	e.putConfig(t, 5, d1)
	cfg, err := e.sled.GetConfig(ctx)
	if err != nil || cfg.Generation != 5 || len(cfg.Artifacts) != 1 || cfg.Artifacts[0] != d1 {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
	// Equal generation, same set (in another order, with a duplicate): 204.
	resp, body := do(t, "PUT", e.sledURL+"/artifacts-config",
		strings.NewReader(`{"generation":5,"artifacts":["`+d1.String()+`","`+d1.String()+`"]}`))
	if resp.StatusCode != 204 || len(body) != 0 {
		t.Fatalf("same config again: %d %s", resp.StatusCode, body)
	}
	// Equal generation, another set: 409.
	err = e.sled.PutConfig(ctx, api.Config{Generation: 5, Artifacts: []api.Digest{d1, d2}})
	if !errors.Is(err, api.ErrConfigGeneration) {
		t.Fatalf("same generation, other set: %v", err)
	}
	// Lower generation: 409 with the generations in the message.
	resp, body = do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(`{"generation":4,"artifacts":[]}`))
	eb := wantError(t, resp, body, 409, "CONFIG_GENERATION")
	if !strings.Contains(eb.Message, "4") || !strings.Contains(eb.Message, "5") {
		t.Errorf("message %q does not name the generations", eb.Message)
	}
	// Higher generation: 204.
	e.putConfig(t, 6, d1, d2)
	if cfg, _ := e.sled.GetConfig(ctx); cfg.Generation != 6 || len(cfg.Artifacts) != 2 {
		t.Fatalf("config after 6 = %+v", cfg)
	}
	st, err := e.sled.Status(ctx)
	if err != nil || st.Generation == nil || *st.Generation != 6 || st.ConfiguredArtifacts == nil || *st.ConfiguredArtifacts != 2 {
		t.Fatalf("status = %+v, %v", st, err)
	}
}

func TestServer_Config_EmptySetIsArray(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putConfig(t, 1)
	_, body := do(t, "GET", e.sledURL+"/artifacts-config", nil)
	if got := strings.TrimSpace(string(body)); got != `{"generation":1,"artifacts":[]}` {
		t.Fatalf("body %s", got)
	}
}

func TestServer_Config_MalformedBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ body, code string }{
		{``, "BAD_REQUEST"},
		{`not json`, "BAD_REQUEST"},
		{`{"generation":1}`, "BAD_REQUEST"},
		{`{"artifacts":[]}`, "BAD_REQUEST"},
		{`{"generation":-1,"artifacts":[]}`, "BAD_REQUEST"},
		{`{"generation":1,"artifacts":[]} {}`, "BAD_REQUEST"},
		{`{"generation":1,"artifacts":["ABC"]}`, "INVALID_HASH"},
	} {
		resp, body := do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(c.body))
		wantError(t, resp, body, 400, c.code)
	}
	if _, err := e.sled.GetConfig(context.Background()); !errors.Is(err, api.ErrNoConfig) {
		t.Fatalf("a refused config took effect: %v", err)
	}
}

// TestServer_Generation_Bounds: omicron's Generation fits in an i64;
// 2^63 and above is 400 on the config, on PUT and on copy-from, and
// changes nothing.
func TestServer_Generation_Bounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const top = "9223372036854775807" // 2^63-1
	for _, g := range []string{"9223372036854775808", "18446744073709551615"} {
		resp, body := do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(`{"generation":`+g+`,"artifacts":[]}`))
		eb := wantError(t, resp, body, 400, "BAD_REQUEST")
		if !strings.Contains(eb.Message, "generation") || !strings.Contains(eb.Message, top) {
			t.Errorf("message %q does not name the field and the bound", eb.Message)
		}
	}
	if _, err := e.sled.GetConfig(context.Background()); !errors.Is(err, api.ErrNoConfig) {
		t.Fatalf("a refused config took effect: %v", err)
	}
	b, d := blob(t, 100)
	upper := strings.ToUpper(d.String())
	resp, body := do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(`{"generation":`+top+`,"artifacts":["`+upper+`"]}`))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("config at 2^63-1 with an upper-case hash: %d %s", resp.StatusCode, body)
	}
	if cfg, err := e.sled.GetConfig(context.Background()); err != nil || len(cfg.Artifacts) != 1 || cfg.Artifacts[0] != d {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
	resp, body = do(t, "PUT", e.sledURL+"/artifacts/"+d.String()+"?generation=9223372036854775808", bytes.NewReader(b))
	wantError(t, resp, body, 400, "BAD_REQUEST")
	resp, body = do(t, "POST", e.sledURL+"/artifacts/"+d.String()+"/copy-from-depot?generation=9223372036854775808",
		strings.NewReader(`{"depot_base_url":"http://127.0.0.1:1"}`))
	wantError(t, resp, body, 400, "BAD_REQUEST")
	e.checkMirrors(t)
	resp, body = do(t, "PUT", e.sledURL+"/artifacts/"+upper+"?generation="+top, bytes.NewReader(b))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("put at 2^63-1: %d %s", resp.StatusCode, body)
	}
	e.checkMirrors(t, d)
}

func TestServer_PutArtifact_Generation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b, d := blob(t, 1000)
	bOut, dOut := blob(t, 1000)
	// Unmanaged: a generation cannot match.
	_, err := e.sled.PutArtifactAt(ctx, d, gen(1), bytes.NewReader(b), int64(len(b)))
	if !errors.Is(err, api.ErrGeneration) {
		t.Fatalf("put with a generation on an unmanaged sled: %v", err)
	}
	e.putConfig(t, 3, d)
	for _, c := range []struct {
		name string
		gen  *uint64
	}{{"missing", nil}, {"lower", gen(2)}, {"higher", gen(4)}} {
		_, err := e.sled.PutArtifactAt(ctx, d, c.gen, bytes.NewReader(b), int64(len(b)))
		if !errors.Is(err, api.ErrGeneration) {
			t.Fatalf("%s generation: %v, want 409 GENERATION", c.name, err)
		}
	}
	resp, body := do(t, "PUT", e.sledURL+"/artifacts/"+d.String()+"?generation=three", bytes.NewReader(b))
	wantError(t, resp, body, 400, "BAD_REQUEST")
	resp, body = do(t, "PUT", e.sledURL+"/artifacts/"+d.String(), bytes.NewReader(b))
	eb := wantError(t, resp, body, 409, "GENERATION")
	if !strings.Contains(eb.Message, "generation=3") {
		t.Errorf("message %q does not say which generation to send", eb.Message)
	}
	// Not in the config.
	resp, body = do(t, "PUT", e.sledURL+"/artifacts/"+dOut.String()+"?generation=3", bytes.NewReader(bOut))
	wantError(t, resp, body, 400, "NOT_IN_CONFIG")
	e.checkMirrors(t)
	// The right generation.
	res, err := e.sled.PutArtifactAt(ctx, d, gen(3), bytes.NewReader(b), int64(len(b)))
	if err != nil || res.SuccessfulWrites != 2 {
		t.Fatalf("put at generation 3 = %+v, %v", res, err)
	}
	e.checkMirrors(t, d)
}

func TestServer_DeleteArtifact_InConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := e.putBlob(t, 100)
	e.putConfig(t, 1, d)
	resp, body := do(t, "DELETE", e.sledURL+"/artifacts/"+d.String(), nil)
	wantError(t, resp, body, 409, "ARTIFACT_IN_CONFIG")
	if err := e.sled.DeleteArtifact(context.Background(), d); !errors.Is(err, api.ErrArtifactInConfig) {
		t.Fatalf("client delete: %v", err)
	}
	e.checkMirrors(t, d)
	// Once a config drops it, the reconciler removes it; a DELETE is a no-op.
	e.putConfig(t, 2)
	e.waitReconciled(t, 1)
	if err := e.sled.DeleteArtifact(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	e.checkMirrors(t)
}

func TestServer_ListArtifacts_OnlyConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, d1 := e.putBlob(t, 100)
	_, d2 := e.putBlob(t, 200)
	_, d3 := blob(t, 300) // configured, not yet stored
	e.putConfig(t, 7, d1, d3)
	g, list, err := e.sled.ListArtifacts(ctx)
	if err != nil || g == nil || *g != 7 || len(list) != 1 || list[d1] != 2 {
		t.Fatalf("list = %v %v %v; want generation 7 and only %s with 2 copies", g, list, err, d1)
	}
	// The reconciler deletes what the config does not list.
	e.waitReconciled(t, 1)
	e.checkMirrors(t, d1)
	if _, err := e.depot.HeadArtifact(ctx, d2); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("HEAD of a reconciled artifact: %v", err)
	}
}

func TestServer_Status_Background(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putBlob(t, 1000)
	st, err := e.sled.StartScrub(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = st // queued or running: the pass shows in /status
	waitUntil(t, func() bool {
		s, err := e.sled.Status(context.Background())
		return err == nil && s.Scrub.Passes >= 1 && !s.Scrub.Running
	})
	s, _ := e.sled.Status(context.Background())
	if s.Scrub.Checked != 1 || s.Copies.Limit != 4 || s.Reconciler.Passes < 1 {
		t.Fatalf("status = %+v", s)
	}
	resp, body := do(t, "POST", e.sledURL+"/scrub", nil)
	if resp.StatusCode != http.StatusAccepted || !bytes.Contains(body, []byte(`"verify"`)) {
		t.Fatalf("POST /scrub: %d %s", resp.StatusCode, body)
	}
}

// waitReconciled waits until the sled's reconciler has deleted n
// artifacts since start-up (every mirror's copy is gone by then).
func (e *env) waitReconciled(t testing.TB, n int) {
	t.Helper()
	waitUntil(t, func() bool {
		st, err := e.sled.Status(context.Background())
		return err == nil && st.Reconciler.TotalDeleted >= n
	})
}

// waitUntil polls cond every 10 ms for up to 5 s.
func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}
