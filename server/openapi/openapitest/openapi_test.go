package openapitest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"depot/server/api"
	"depot/server/openapi"
	"depot/server/openapi/openapitest"
)

func TestLoad_Validates(t *testing.T) {
	doc, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x (nullable: true is 3.0 syntax)", doc.OpenAPI)
	}
	// Each call returns its own document.
	doc2, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if doc == doc2 {
		t.Error("Load returned the same *openapi3.T twice")
	}
}

// TestLoad_Operations pins the routes of DESIGN.md sections 2 and 3.
func TestLoad_Operations(t *testing.T) {
	doc := load(t)
	want := map[string]string{
		"GET /artifacts-config":                                  "artifact_config_get",
		"PUT /artifacts-config":                                  "artifact_config_put",
		"GET /artifacts":                                         "artifact_list",
		"PUT /artifacts/{sha256}":                                "artifact_put",
		"GET /artifacts/{sha256}":                                "artifact_get",
		"HEAD /artifacts/{sha256}":                               "artifact_head",
		"DELETE /artifacts/{sha256}":                             "artifact_delete",
		"POST /artifacts/{sha256}/copy-from-depot":               "artifact_copy_from_depot",
		"GET /copies":                                            "copy_list",
		"GET /copies/{sha256}":                                   "copy_get",
		"POST /scrub":                                            "scrub_start",
		"GET /status":                                            "status_get",
		"GET /metrics":                                           "metrics_get",
		"GET /openapi.json":                                      "openapi_get",
		"GET /artifact/sha256/{sha256}":                          "artifact_get_by_sha256",
		"HEAD /artifact/sha256/{sha256}":                         "artifact_head_by_sha256",
		"PUT /v1/system/update/repositories":                     "system_update_repository_upload",
		"GET /v1/system/update/repositories":                     "system_update_repository_list",
		"GET /v1/system/update/repositories/{system_version}":    "system_update_repository_view",
		"DELETE /v1/system/update/repositories/{system_version}": "system_update_delete_repository",
		"POST /v1/system/update/trust-roots":                     "system_update_trust_root_create",
		"GET /v1/system/update/trust-roots":                      "system_update_trust_root_list",
		"GET /v1/system/update/trust-roots/{trust_root_id}":      "system_update_trust_root_view",
		"DELETE /v1/system/update/trust-roots/{trust_root_id}":   "system_update_trust_root_delete",
		"GET /v1/sleds":                                          "sled_list",
		"GET /v1/sleds/{id}":                                     "sled_view",
		"PUT /v1/sleds/{id}":                                     "sled_put",
		"DELETE /v1/sleds/{id}":                                  "sled_expunge",
		"GET /v1/replication/status":                             "replication_status_get",
		"POST /v1/replication/activate":                          "replication_activate",
		"GET /v1/audit":                                          "audit_list",
		"GET /v1/tokens":                                         "token_list",
		"POST /v1/tokens":                                        "token_create",
		"DELETE /v1/tokens/{name}":                               "token_revoke",
	}
	got := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			got[method+" "+path] = op.OperationID
		}
	}
	for k, id := range want {
		if got[k] != id {
			t.Errorf("%s: operationId %q, want %q", k, got[k], id)
		}
	}
	for k, id := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s (%s) is documented but not pinned by this test", k, id)
		}
	}
}

// TestLoad_Conventions walks every response: JSON bodies have schemas,
// every error (but the text/plain 416 of http.ServeContent) is the common
// error body with X-Error-Code, and nothing uses a catch-all default.
func TestLoad_Conventions(t *testing.T) {
	doc := load(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := op.OperationID + " (" + method + " " + path + ")"
			if op.Responses.Default() != nil {
				t.Errorf("%s: has a default response, which would accept any status", name)
			}
			if rb := op.RequestBody; rb != nil {
				for mt, m := range rb.Value.Content {
					if m.Schema == nil {
						t.Errorf("%s: request %s has no schema", name, mt)
					}
				}
			}
			for code, ref := range op.Responses.Map() {
				r := ref.Value
				for mt, m := range r.Content {
					if m.Schema == nil {
						t.Errorf("%s %s: %s has no schema", name, code, mt)
					}
				}
				if code < "400" || code == "416" {
					continue
				}
				if r.Headers["X-Error-Code"] == nil {
					t.Errorf("%s %s: no X-Error-Code header", name, code)
				}
				if method == http.MethodHead {
					if len(r.Content) != 0 {
						t.Errorf("%s %s: an error to HEAD documents a body", name, code)
					}
					continue
				}
				if len(r.Content) != 1 || r.Content["application/json"] == nil ||
					r.Content["application/json"].Schema.Ref != "#/components/schemas/Error" {
					t.Errorf("%s %s: not the common error body", name, code)
				}
				if r.Description == nil || !strings.Contains(*r.Description, "`") {
					t.Errorf("%s %s: the description names no error code", name, code)
				}
			}
		}
	}
}

func TestErrorCodes_Contract(t *testing.T) {
	codes, err := openapitest.ErrorCodes()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"INVALID_HASH", "HASH_MISMATCH", "TRUNCATED_BODY", "BAD_REQUEST", "NOT_FOUND",
		"METHOD_NOT_ALLOWED", "BODY_TIMEOUT", "TOO_LARGE", "NO_MIRRORS", "SHUTTING_DOWN",
		"INSUFFICIENT_STORAGE", "INTERNAL", "NO_CONFIG", "CONFIG_GENERATION", "CATALOG_MISMATCH", "GENERATION",
		"NOT_IN_CONFIG", "ARTIFACT_IN_CONFIG", "TOO_MANY_COPIES", "INVALID_DEPOT_URL",
		"REPOSITORY_INVALID", "REPOSITORY_CONFLICT", "TRUST_ROOT_INVALID", "INVALID_SLED",
		"NOT_COORDINATOR", "SOURCE_UNAVAILABLE", "SOURCE_NOT_FOUND",
		"UNAUTHENTICATED", "FORBIDDEN", "AUTH_RATE_LIMITED", "TOKEN_EXISTS", "SERVER_BUSY", "CATALOG_UNAVAILABLE",
	}
	if !slices.Equal(codes, want) {
		t.Errorf("ErrorCodes() = %v\nwant %v", codes, want)
	}
	desc := load(t).Components.Schemas["ErrorCode"].Value.Description
	for _, c := range codes {
		if !strings.Contains(desc, "`"+c+"`") {
			t.Errorf("the ErrorCode description does not explain %s", c)
		}
	}
}

// TestErrorCodes_CoverAPICodes keeps the document and server/api in step:
// every code the client knows is documented (server tests check that every
// code of the server's table is one of them).
func TestErrorCodes_CoverAPICodes(t *testing.T) {
	codes, err := openapitest.ErrorCodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range api.Codes() {
		if !slices.Contains(codes, c) {
			t.Errorf("server/api has the code %s, but the document does not list it", c)
		}
	}
}

func TestJSON_RoundTrips(t *testing.T) {
	b, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatal("JSON() is not valid JSON")
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("load JSON(): %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("validate JSON(): %v", err)
	}
	again, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("JSON() does not round-trip:\nfirst  %.300s\nsecond %.300s", b, again)
	}
	orig, err := json.Marshal(load(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, b) {
		t.Error("JSON() differs from the marshalled Load()")
	}
}

func TestHandler_ServeHTTP(t *testing.T) {
	want, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(t)
	srv := httptest.NewServer(openapi.Handler())
	t.Cleanup(srv.Close)
	tr := v.Transport(nil)
	c := &http.Client{Transport: tr}

	resp, err := c.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(body, want) {
		t.Errorf("GET: %d %q, %d bytes; want 200 application/json, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(want))
	}
	if errs := tr.Errors(); len(errs) != 0 {
		t.Errorf("GET /openapi.json does not match the document it serves: %v", errs)
	}

	resp, err = http.Post(srv.URL+"/openapi.json", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	var eb struct {
		ErrorCode string `json:"error_code"`
	}
	err = json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed || eb.ErrorCode != "METHOD_NOT_ALLOWED" || resp.Header.Get("Allow") == "" {
		t.Errorf("POST: %d %q (%v), Allow %q; want 405 METHOD_NOT_ALLOWED with Allow", resp.StatusCode, eb.ErrorCode, err, resp.Header.Get("Allow"))
	}

	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/openapi.json", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD: %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, len(want))
	}
}

func load(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func newValidator(t testing.TB) *openapitest.Validator {
	t.Helper()
	v, err := openapitest.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
