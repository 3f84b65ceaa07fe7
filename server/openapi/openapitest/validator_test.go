package openapitest_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"depot/server/openapi/openapitest"
)

const (
	hashA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	hashB = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	etagA = `"` + hashA + `"`
)

// exchange is one hand-made request and response.
type exchange struct {
	method, target string
	reqHeader      http.Header
	reqBody        string
	status         int
	respHeader     http.Header
	respBody       string
}

func (x exchange) check(t testing.TB, v *openapitest.Validator) error {
	t.Helper()
	req, err := http.NewRequest(x.method, "http://127.0.0.1:40001"+x.target, strings.NewReader(x.reqBody))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range x.reqHeader {
		req.Header[k] = vs
	}
	h := x.respHeader
	if h == nil {
		h = http.Header{}
	}
	resp := &http.Response{StatusCode: x.status, Header: h, Body: http.NoBody, Request: req}
	return v.Check(req, []byte(x.reqBody), resp, []byte(x.respBody))
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

var (
	jsonHdr = hdr("Content-Type", "application/json", "X-Request-Id", "r1")
	blobHdr = hdr("Content-Type", "application/octet-stream", "ETag", etagA, "Content-Length", "5", "Accept-Ranges", "bytes")
)

func errHdr(code string) http.Header {
	return hdr("Content-Type", "application/json", "X-Request-Id", "r1", "X-Error-Code", code)
}

func errBody(code string) string {
	return `{"request_id":"r1","error_code":"` + code + `","message":"m"}`
}

const (
	copyJobJSON = `{"hash":"` + hashA + `","source":"http://10.0.0.2:12348","generation":null,"state":"running","bytes":0,"started":"2025-01-02T03:04:05.123456789Z"}`
	scrubJSON   = `{"running":false,"verify":true,"artifacts":2,"checked":2,"bytes":10,"corrupt":0,"missing":0,"repaired":0,"failed":0,"passes":1,"total_corrupt":0,"total_repaired":0,"total_failed":0,"finished":"2025-01-02T03:04:05Z"}`
	statusJSON  = `{"version":"dev","uptime_seconds":1.5,"mirrors":[{"path":"/m2a","healthy":true,"artifacts":1,"bytes":5,"free":100},` +
		`{"path":"/m2b","healthy":false,"artifacts":0,"bytes":0,"free":0,"last_error":"EIO","last_error_time":"2025-01-02T03:04:05Z"}],` +
		`"generation":3,"configured_artifacts":1,"depot_url":"http://127.0.0.1:12348",` +
		`"copies":{"running":0,"limit":4,"queued":0,"queue_limit":64,"succeeded":1,"failed":0,"rejected":0},` +
		`"reconciler":{"running":false,"generation":3,"found":0,"deleted":0,"skipped":0,"failed":0,"passes":2,"total_deleted":1,"total_failed":0},` +
		`"scrub":` + scrubJSON + `,"coordinator":{"anything":true}}`
	repoJSON = `{"hash":"` + hashB + `","system_version":"1.0.0","file_name":"repo.zip","time_created":"2025-01-02T03:04:05Z",` +
		`"artifacts":[{"name":"host","version":"1.0.0","kind":"host_phase_2","hash":"` + hashA + `","size":5}]}`
	progressJSON = `{"hash":"` + hashB + `","system_version":"1.0.0","file_name":"repo.zip","time_created":"2025-01-02T03:04:05Z",` +
		`"artifacts":[{"name":"host","version":"1.0.0","kind":"host_phase_2","hash":"` + hashA + `","size":5,"sleds":["local","sled-0a1b2c3d"]}],` +
		`"state":"durable","min_replication":2,"in_service_sleds":3}`
	sledJSON     = `{"id":"sled-0a1b2c3d","control_url":"http://10.0.0.2:12345","state":"in_service","added":"2025-01-02T03:04:05Z"}`
	counters     = `{"put_config":{"ok":1,"err":0},"list":{"ok":1,"err":0},"put":{"ok":0,"err":0},"copy":{"ok":2,"err":1}}`
	replStatusOK = `{"generation":4,"activations":1,"running":false,` +
		`"last_activation":{"started":"2025-01-02T03:04:05Z","finished":"2025-01-02T03:04:06Z","generation":4,"sleds":3,"planned":3,"counters":` + counters + `,"converged":true},` +
		`"lifetime":` + counters + `,"sleds":[{"id":"local","control_url":"http://127.0.0.1:12345","state":"in_service","added":"2025-01-02T03:04:05Z","mirrors":2,"artifacts":1}],` +
		`"recent_requests":[{"time":"2025-01-02T03:04:05Z","sled":"local","op":"copy","hash":"` + hashA + `","source":"http://10.0.0.2:12348","generation":4,"duration_ms":12,"error":"peer: 404"}]}`
	trustRootJSON = `{"id":"3f2b9c1e-8d4a-4e1b-9f0a-6c2d7e8f9a0b","sha256":"` + hashB + `","time_created":"2025-01-02T03:04:05Z","source":"api","root_role":{"signed":{"_type":"root"},"signatures":[]}}`
)

func TestValidator_Check_Accepts(t *testing.T) {
	v := newValidator(t)
	for name, x := range map[string]exchange{
		"PUT artifact 200": {
			method: "PUT", target: "/artifacts/" + hashA + "?generation=3",
			reqHeader: hdr("Content-Type", "application/octet-stream"), reqBody: "hello",
			status: 200, respHeader: jsonHdr, respBody: `{"datasets":2,"successful_writes":1}`,
		},
		"PUT artifact without generation or Content-Type (unmanaged sled, curl -T)": {
			method: "PUT", target: "/artifacts/" + hashA, reqBody: "hello",
			status: 200, respHeader: jsonHdr, respBody: `{"datasets":2,"successful_writes":2}`,
		},
		"PUT artifact 400 INVALID_HASH": {
			method: "PUT", target: "/artifacts/not-a-hash", reqBody: "hello",
			status: 400, respHeader: errHdr("INVALID_HASH"), respBody: errBody("INVALID_HASH"),
		},
		"PUT artifact 409 GENERATION": {
			method: "PUT", target: "/artifacts/" + hashA, reqBody: "hello",
			status: 409, respHeader: errHdr("GENERATION"), respBody: errBody("GENERATION"),
		},
		"PUT artifact 507": {
			method: "PUT", target: "/artifacts/" + hashA, reqBody: "hello",
			status: 507, respHeader: errHdr("INSUFFICIENT_STORAGE"), respBody: errBody("INSUFFICIENT_STORAGE"),
		},
		"GET /artifacts unmanaged": {
			method: "GET", target: "/artifacts",
			status: 200, respHeader: jsonHdr, respBody: `{"generation":null,"list":{"` + hashA + `":2}}`,
		},
		"GET /artifacts managed, charset": {
			method: "GET", target: "/artifacts",
			status: 200, respHeader: hdr("Content-Type", "application/json; charset=UTF-8"), respBody: `{"generation":7,"list":{}}`,
		},
		"GET artifact 200": {
			method: "GET", target: "/artifacts/" + hashA,
			status: 200, respHeader: blobHdr, respBody: "hello",
		},
		"GET artifact 206": {
			method: "GET", target: "/artifact/sha256/" + hashA, reqHeader: hdr("Range", "bytes=0-1"),
			status: 206, respHeader: hdr("Content-Type", "application/octet-stream", "ETag", etagA, "Content-Range", "bytes 0-1/5"),
		},
		"GET artifact 206 multipart": {
			method: "GET", target: "/artifact/sha256/" + hashA, reqHeader: hdr("Range", "bytes=0-1,3-4"),
			status: 206, respHeader: hdr("Content-Type", "multipart/byteranges; boundary=x", "ETag", etagA),
		},
		"GET artifact 304": {
			method: "GET", target: "/artifacts/" + hashA, reqHeader: hdr("If-None-Match", etagA),
			status: 304, respHeader: hdr("ETag", etagA),
		},
		"GET artifact 404": {
			method: "GET", target: "/artifact/sha256/" + hashA,
			status: 404, respHeader: errHdr("NOT_FOUND"), respBody: errBody("NOT_FOUND"),
		},
		"GET artifact 416": {
			method: "GET", target: "/artifacts/" + hashA, reqHeader: hdr("Range", "bytes=9-"),
			status: 416, respHeader: hdr("Content-Type", "text/plain; charset=utf-8", "Content-Range", "bytes */5"),
			respBody: "invalid range: failed to overlap\n",
		},
		"HEAD artifact 200": {
			method: "HEAD", target: "/artifact/sha256/" + hashA,
			status: 200, respHeader: blobHdr,
		},
		"HEAD artifact 404": {
			method: "HEAD", target: "/artifacts/" + hashA,
			status: 404, respHeader: hdr("X-Error-Code", "NOT_FOUND", "X-Request-Id", "r1"),
		},
		"DELETE artifact 204": {
			method: "DELETE", target: "/artifacts/" + hashA, status: 204,
		},
		"GET /artifacts-config": {
			method: "GET", target: "/artifacts-config",
			status: 200, respHeader: jsonHdr, respBody: `{"generation":3,"artifacts":["` + hashA + `"]}`,
		},
		"GET /artifacts-config 404 NO_CONFIG": {
			method: "GET", target: "/artifacts-config",
			status: 404, respHeader: errHdr("NO_CONFIG"), respBody: errBody("NO_CONFIG"),
		},
		"PUT /artifacts-config without Content-Type": {
			method: "PUT", target: "/artifacts-config", reqBody: `{"generation":3,"artifacts":["` + hashA + `"]}`,
			status: 204,
		},
		"PUT /artifacts-config malformed, 400": {
			method: "PUT", target: "/artifacts-config", reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"generation":-1}`,
			status: 400, respHeader: errHdr("BAD_REQUEST"), respBody: errBody("BAD_REQUEST"),
		},
		"POST copy-from-depot 202": {
			method: "POST", target: "/artifacts/" + hashA + "/copy-from-depot?generation=3",
			reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"depot_base_url":"http://10.0.0.2:12348"}`,
			status: 202, respHeader: jsonHdr, respBody: `{}`,
		},
		"POST copy-from-depot 429": {
			method: "POST", target: "/artifacts/" + hashA + "/copy-from-depot",
			reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"depot_base_url":"http://10.0.0.2:12348"}`,
			status: 429, respHeader: hdr("Content-Type", "application/json", "Retry-After", "5", "X-Error-Code", "TOO_MANY_COPIES"),
			respBody: errBody("TOO_MANY_COPIES"),
		},
		"GET /copies": {
			method: "GET", target: "/copies",
			status: 200, respHeader: jsonHdr, respBody: `{"items":[` + copyJobJSON + `]}`,
		},
		"GET /copies/{sha256} finished": {
			method: "GET", target: "/copies/" + hashA + "?wait=30s",
			status: 200, respHeader: jsonHdr,
			respBody: `{"hash":"` + hashA + `","source":"http://10.0.0.2:12348","generation":3,"state":"failed","bytes":3,"error":"short body",` +
				`"started":"2025-01-02T03:04:05Z","finished":"2025-01-02T03:04:06+01:00"}`,
		},
		"POST /scrub": {
			method: "POST", target: "/scrub",
			status: 202, respHeader: jsonHdr, respBody: scrubJSON,
		},
		"GET /status with extra fields": {
			method: "GET", target: "/status",
			status: 200, respHeader: jsonHdr, respBody: statusJSON,
		},
		"GET /metrics": {
			method: "GET", target: "/metrics",
			status: 200, respHeader: hdr("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), respBody: "depot_up 1\n",
		},
		"PUT repository 200": {
			method: "PUT", target: "/v1/system/update/repositories?file_name=repo.zip", reqBody: "PK...",
			status: 200, respHeader: jsonHdr, respBody: `{"repo":` + repoJSON + `,"status":"inserted"}`,
		},
		"PUT repository without file_name, 400": {
			method: "PUT", target: "/v1/system/update/repositories", reqBody: "PK...",
			status: 400, respHeader: errHdr("BAD_REQUEST"), respBody: errBody("BAD_REQUEST"),
		},
		"GET repositories": {
			method: "GET", target: "/v1/system/update/repositories",
			status: 200, respHeader: jsonHdr, respBody: `{"items":[` + repoJSON + `],"next_page":null}`,
		},
		"GET repository progress": {
			method: "GET", target: "/v1/system/update/repositories/1.0.0?wait=1m30s",
			status: 200, respHeader: jsonHdr, respBody: progressJSON,
		},
		"DELETE repository 404": {
			method: "DELETE", target: "/v1/system/update/repositories/9.9.9",
			status: 404, respHeader: errHdr("NOT_FOUND"), respBody: errBody("NOT_FOUND"),
		},
		"POST trust root 201": {
			method: "POST", target: "/v1/system/update/trust-roots",
			reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"signed":{"_type":"root"},"signatures":[]}`,
			status: 201, respHeader: jsonHdr, respBody: trustRootJSON,
		},
		"POST trust root 400": {
			method: "POST", target: "/v1/system/update/trust-roots",
			reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"nope":1}`,
			status: 400, respHeader: errHdr("TRUST_ROOT_INVALID"), respBody: errBody("TRUST_ROOT_INVALID"),
		},
		"GET trust roots": {
			method: "GET", target: "/v1/system/update/trust-roots",
			status: 200, respHeader: jsonHdr, respBody: `{"items":[` + trustRootJSON + `],"next_page":"eyJzb3J0IjoiaWRfYXNjZW5kaW5nIn0"}`,
		},
		"PUT sled": {
			method: "PUT", target: "/v1/sleds/sled-0a1b2c3d",
			reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"control_url":"http://10.0.0.2:12345"}`,
			status: 200, respHeader: jsonHdr, respBody: sledJSON,
		},
		"DELETE sled": {
			method: "DELETE", target: "/v1/sleds/sled-0a1b2c3d",
			status: 200, respHeader: jsonHdr,
			respBody: `{"id":"sled-0a1b2c3d","control_url":"http://10.0.0.2:12345","depot_url":"http://10.0.0.2:12348","state":"expunged","added":"2025-01-02T03:04:05Z"}`,
		},
		"GET sleds on a plain sled, 404 NOT_COORDINATOR": {
			method: "GET", target: "/v1/sleds",
			status: 404, respHeader: errHdr("NOT_COORDINATOR"), respBody: errBody("NOT_COORDINATOR"),
		},
		"GET replication status": {
			method: "GET", target: "/v1/replication/status?wait=30s",
			status: 200, respHeader: jsonHdr, respBody: replStatusOK,
		},
		"GET replication status before any activation": {
			method: "GET", target: "/v1/replication/status",
			status: 200, respHeader: jsonHdr,
			respBody: `{"generation":0,"activations":0,"running":false,"last_activation":null,"lifetime":` + counters + `,"sleds":[],"recent_requests":[]}`,
		},
		"POST activate": {
			method: "POST", target: "/v1/replication/activate",
			status: 202, respHeader: jsonHdr, respBody: `{}`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			if err := x.check(t, v); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestValidator_Check_Rejects(t *testing.T) {
	v := newValidator(t)
	for name, tc := range map[string]struct {
		x       exchange
		is      error
		mention []string // substrings the error must contain
	}{
		"response missing a required field": {
			x: exchange{method: "PUT", target: "/artifacts/" + hashA, reqBody: "hello",
				status: 200, respHeader: jsonHdr, respBody: `{"datasets":2}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_put", "successful_writes"},
		},
		"wrong status": {
			x: exchange{method: "PUT", target: "/artifacts/" + hashA, reqBody: "hello",
				status: 201, respHeader: jsonHdr, respBody: `{"datasets":2,"successful_writes":2}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_put", "201", "not documented"},
		},
		"undocumented path": {
			x:  exchange{method: "GET", target: "/nope", status: 404, respHeader: errHdr("NOT_FOUND"), respBody: errBody("NOT_FOUND")},
			is: openapitest.ErrUndocumented, mention: []string{"/nope"},
		},
		"undocumented method": {
			x:  exchange{method: "PATCH", target: "/artifacts", status: 405, respHeader: errHdr("METHOD_NOT_ALLOWED"), respBody: errBody("METHOD_NOT_ALLOWED")},
			is: openapitest.ErrUndocumented, mention: []string{"PATCH"},
		},
		"invalid request accepted": {
			x: exchange{method: "PUT", target: "/artifacts/ABC", reqBody: "hello",
				status: 200, respHeader: jsonHdr, respBody: `{"datasets":2,"successful_writes":2}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_put", "sha256", "not a 4xx"},
		},
		"error body missing error_code": {
			x: exchange{method: "DELETE", target: "/artifacts/" + hashA,
				status: 409, respHeader: jsonHdr, respBody: `{"request_id":"r1","message":"m"}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_delete", "error_code"},
		},
		"unknown error code": {
			x: exchange{method: "DELETE", target: "/artifacts/" + hashA,
				status: 409, respHeader: errHdr("ARTIFACT_IN_CONFIG"), respBody: errBody("IN_CONFIG")},
			is: openapitest.ErrMismatch, mention: []string{"error_code"},
		},
		"error code header not a code": {
			x: exchange{method: "HEAD", target: "/artifacts/" + hashA,
				status: 404, respHeader: hdr("X-Error-Code", "nope")},
			is: openapitest.ErrMismatch, mention: []string{"artifact_head", "X-Error-Code"},
		},
		"JSON answered as text": {
			x: exchange{method: "GET", target: "/artifacts",
				status: 200, respHeader: hdr("Content-Type", "text/plain"), respBody: `{"generation":null,"list":{}}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_list", "Content-Type"},
		},
		"generation null where it must be a number": {
			x: exchange{method: "GET", target: "/artifacts-config",
				status: 200, respHeader: jsonHdr, respBody: `{"generation":null,"artifacts":[]}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_config_get", "generation"},
		},
		"copy count not an integer": {
			x: exchange{method: "GET", target: "/artifacts",
				status: 200, respHeader: jsonHdr, respBody: `{"generation":1,"list":{"` + hashA + `":"two"}}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_list"},
		},
		"blob without ETag": {
			x: exchange{method: "GET", target: "/artifact/sha256/" + hashA,
				status: 200, respHeader: hdr("Content-Type", "application/octet-stream")},
			is: openapitest.ErrMismatch, mention: []string{"artifact_get_by_sha256", "ETag"},
		},
		"HEAD without ETag": {
			x: exchange{method: "HEAD", target: "/artifacts/" + hashA,
				status: 200, respHeader: hdr("Content-Type", "application/octet-stream")},
			is: openapitest.ErrMismatch, mention: []string{"artifact_head", "ETag"},
		},
		"blob served as JSON": {
			x: exchange{method: "GET", target: "/artifacts/" + hashA,
				status: 200, respHeader: hdr("Content-Type", "application/json", "ETag", etagA), respBody: `{}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_get", "Content-Type"},
		},
		"429 without Retry-After": {
			x: exchange{method: "POST", target: "/artifacts/" + hashA + "/copy-from-depot",
				reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"depot_base_url":"http://h:1"}`,
				status: 429, respHeader: errHdr("TOO_MANY_COPIES"), respBody: errBody("TOO_MANY_COPIES")},
			is: openapitest.ErrMismatch, mention: []string{"artifact_copy_from_depot", "Retry-After"},
		},
		"copy request body of the wrong shape accepted": {
			x: exchange{method: "POST", target: "/artifacts/" + hashA + "/copy-from-depot",
				reqHeader: hdr("Content-Type", "application/json"), reqBody: `{"url":"http://h:1"}`,
				status: 202, respHeader: jsonHdr, respBody: `{}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_copy_from_depot", "depot_base_url"},
		},
		"copy job with a bad state": {
			x: exchange{method: "GET", target: "/copies/" + hashA,
				status: 200, respHeader: jsonHdr, respBody: strings.Replace(copyJobJSON, `"running"`, `"paused"`, 1)},
			is: openapitest.ErrMismatch, mention: []string{"copy_get", "state"},
		},
		"time that is not RFC 3339": {
			x: exchange{method: "GET", target: "/copies",
				status: 200, respHeader: jsonHdr, respBody: `{"items":[` + strings.Replace(copyJobJSON, "2025-01-02T03:04:05.123456789Z", "yesterday", 1) + `]}`},
			is: openapitest.ErrMismatch, mention: []string{"copy_list", "started"},
		},
		"status without scrub": {
			x: exchange{method: "GET", target: "/status",
				status: 200, respHeader: jsonHdr, respBody: strings.Replace(statusJSON, `"scrub":`, `"scrubbed":`, 1)},
			is: openapitest.ErrMismatch, mention: []string{"status_get", "scrub"},
		},
		"progress artifact without sleds": {
			x: exchange{method: "GET", target: "/v1/system/update/repositories/1.0.0",
				status: 200, respHeader: jsonHdr, respBody: strings.Replace(progressJSON, `,"sleds":["local","sled-0a1b2c3d"]`, "", 1)},
			is: openapitest.ErrMismatch, mention: []string{"system_update_repository_view", "sleds"},
		},
		"body on 204": {
			x:  exchange{method: "DELETE", target: "/artifacts/" + hashA, status: 204, respHeader: jsonHdr, respBody: `{}`},
			is: openapitest.ErrMismatch, mention: []string{"artifact_delete", "documents none"},
		},
		"5xx to an invalid request": {
			x: exchange{method: "GET", target: "/copies/" + hashA + "?wait=soon",
				status: 500, respHeader: errHdr("INTERNAL"), respBody: errBody("INTERNAL")},
			is: openapitest.ErrMismatch, mention: []string{"copy_get", "wait"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.x.check(t, v)
			if !errors.Is(err, tc.is) {
				t.Fatalf("Check = %v, want %v", err, tc.is)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if len(err.Error()) > 1000 {
				t.Errorf("error is %d bytes long: %.200s…", len(err.Error()), err)
			}
		})
	}
}

func TestValidator_Operations(t *testing.T) {
	v := newValidator(t)
	ops := v.Operations()
	if len(ops) != 34 {
		t.Errorf("%d operations, want 34: %v", len(ops), ops)
	}
	ops[0] = "changed"
	if v.Operations()[0] == "changed" {
		t.Error("Operations returns the validator's own slice")
	}
}
