package openapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
)

//go:embed openapi.yaml
var spec []byte

// specJSON is openapi.yaml rendered as JSON. It is generated (go generate;
// openapitest renders the YAML and its tests fail when the two differ) so
// that the daemon serves the document without linking an OpenAPI library.
//
//go:embed openapi.json
var specJSON []byte

//go:generate go test ./openapitest -run TestEmbeddedJSON -update

// YAML returns the document as written (openapi.yaml). The caller owns the
// slice.
func YAML() []byte { return bytes.Clone(spec) }

// JSON returns the document as JSON, for GET /openapi.json. The caller owns
// the slice.
func JSON() ([]byte, error) { return bytes.Clone(specJSON), nil }

// Handler serves the document as JSON (Content-Type application/json) to
// GET and HEAD; other methods get 405. The document is rendered once, when
// Handler is called. Safe for concurrent use.
func Handler() http.Handler {
	body, err := JSON()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case err != nil:
			// Cannot happen with a document that passes this package's
			// tests; the text stays fixed like every 5xx message.
			writeError(w, r, http.StatusInternalServerError, "INTERNAL",
				"internal error; the OpenAPI document failed to load")
			return
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
				r.Method+" is not allowed on "+r.URL.Path+"; the Allow header lists the methods that are")
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body) // the client went away: nothing to do
		}
	})
}

// writeError writes the common error body. The request id is the one a
// request-id middleware put on the response, else the client's.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	id := w.Header().Get("X-Request-Id")
	if id == "" {
		id = r.Header.Get("X-Request-Id")
	}
	b, _ := json.Marshal(struct {
		RequestID string `json:"request_id"`
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}{id, code, msg}) // strings only: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Error-Code", code)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
