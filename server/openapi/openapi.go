package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed openapi.yaml
var spec []byte

// Load parses the embedded document and validates it (doc.Validate). Each
// call returns a new *openapi3.T, which the caller may modify. Safe for
// concurrent use.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("openapi: load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: validate openapi.yaml: %w", err)
	}
	return doc, nil
}

// JSON returns the document as JSON, for GET /openapi.json. Each call
// renders it anew; the caller owns the slice.
func JSON() ([]byte, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: render JSON: %w", err)
	}
	return b, nil
}

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

// ErrorCodes returns the error codes the document lists (the enum of its
// ErrorCode schema), in document order: a test of the server's error table
// can check that both list the same codes.
func ErrorCodes() ([]string, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	ref := doc.Components.Schemas["ErrorCode"]
	if ref == nil || ref.Value == nil {
		return nil, fmt.Errorf("openapi: the document has no ErrorCode schema")
	}
	codes := make([]string, 0, len(ref.Value.Enum))
	for _, e := range ref.Value.Enum {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("openapi: ErrorCode enum holds %v (%T), not a string", e, e)
		}
		codes = append(codes, s)
	}
	return codes, nil
}
