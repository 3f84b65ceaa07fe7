package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// The sled API's side of catalog identity: catalog_id travels in the
// config body, a config from another catalog is 409 CATALOG_MISMATCH
// naming both, and a malformed id is 400.
func TestServer_Config_CatalogID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := blob(t, 10)
	const a, b = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	put := func(body string) (int, []byte) {
		resp, out := do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(body))
		return resp.StatusCode, out
	}
	if code, out := put(`{"catalog_id":"` + a + `","generation":3,"artifacts":["` + d.String() + `"]}`); code != 204 {
		t.Fatalf("first config: %d %s", code, out)
	}
	resp, body := do(t, "GET", e.sledURL+"/artifacts-config", nil)
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 || got["catalog_id"] != a || got["generation"] != 3.0 {
		t.Fatalf("GET /artifacts-config = %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(`{"catalog_id":"`+b+`","generation":9,"artifacts":[]}`))
	eb := wantError(t, resp, body, 409, "CATALOG_MISMATCH")
	if !strings.Contains(eb.Message, a) || !strings.Contains(eb.Message, b) {
		t.Errorf("message %q does not name both catalogs", eb.Message)
	}
	// omicron's body, without catalog_id, is refused by a catalog's sled.
	resp, body = do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(`{"generation":10,"artifacts":[]}`))
	wantError(t, resp, body, 409, "CATALOG_MISMATCH")
	for _, bad := range []string{"ABCDEF0123456789abcdef0123456789", "short", `../` + a[3:]} {
		resp, body = do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(`{"catalog_id":"`+bad+`","generation":11,"artifacts":[]}`))
		wantError(t, resp, body, 400, "BAD_REQUEST")
	}
	st, err := e.sled.Status(context.Background())
	if err != nil || st.CatalogID != a || *st.Generation != 3 {
		t.Fatalf("status after refusals = %+v, %v", st, err)
	}
}

// A sled driven without catalog ids (omicron's Nexus) keeps the
// generation rules alone.
func TestServer_Config_WithoutCatalogID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"generation":1,"artifacts":[]}`, 204},
		{`{"generation":2,"artifacts":[]}`, 204},
		{`{"generation":1,"artifacts":[]}`, 409},
	} {
		resp, body := do(t, "PUT", e.sledURL+"/artifacts-config", strings.NewReader(c.body))
		if resp.StatusCode != c.code {
			t.Fatalf("%s: %d %s, want %d", c.body, resp.StatusCode, body, c.code)
		}
	}
	resp, body := do(t, "GET", e.sledURL+"/artifacts-config", nil)
	if resp.StatusCode != 200 || strings.Contains(string(body), "catalog_id") {
		t.Fatalf("GET /artifacts-config = %d %s, want omicron's shape", resp.StatusCode, body)
	}
}
