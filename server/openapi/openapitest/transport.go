package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
)

// maxRequestCapture bounds the JSON request bodies the CheckingTransport
// buffers; a larger one (a test of the body limit, say) is passed on
// unvalidated.
const maxRequestCapture = 8 << 20

// CheckingTransport is an http.RoundTripper that validates every exchange
// through it with its Validator and collects the failures instead of
// failing the request: the client sees exactly what the server sent.
// Create it with Validator.Transport; it is safe for concurrent use.
//
// It buffers only JSON request bodies (up to 8 MiB) and JSON and text
// response bodies, putting back readers over the same bytes; raw bodies
// stream through untouched. Transport errors (refused connections,
// cancelled contexts) are returned to the caller and not recorded.
type CheckingTransport struct {
	v    *Validator
	base http.RoundTripper

	mu   sync.Mutex
	errs []error         // guarded by mu
	seen map[string]bool // guarded by mu
}

var _ http.RoundTripper = (*CheckingTransport)(nil)

// Transport returns a CheckingTransport that sends requests through base
// (http.DefaultTransport if nil).
func (v *Validator) Transport(base http.RoundTripper) *CheckingTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &CheckingTransport{v: v, base: base, seen: map[string]bool{}}
}

// RoundTrip sends req through the base transport and validates the
// exchange; see Validator.Check.
func (t *CheckingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req
	var reqBody []byte
	bodyKnown := true
	opID := ""
	route, _, err := t.v.find(req)
	if err == nil {
		opID = route.Operation.OperationID
	}
	if err == nil && takesJSON(route.Operation) && req.Body != nil && req.Body != http.NoBody {
		var cerr error
		out, reqBody, bodyKnown, cerr = captureRequest(req)
		if cerr != nil {
			return nil, cerr
		}
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	var respBody []byte
	if req.Method != http.MethodHead && textual(resp.Header.Get("Content-Type")) {
		respBody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			// The body broke off: hand the client what came and the
			// error, and validate nothing (a short body is not a
			// contract violation of the document's kind).
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(respBody), errReader{err}))
			t.record(opID, nil)
			return resp, nil
		}
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
	}
	op, cerr := t.v.check(req, reqBody, bodyKnown, resp, respBody)
	t.record(op, cerr)
	return resp, nil
}

// captureRequest returns the request to send and a copy of its body: from
// GetBody when the request has one (req is then sent as is), else by
// reading req.Body into a clone of req. known is false when the body is
// larger than maxRequestCapture: it is then sent whole but not validated.
func captureRequest(req *http.Request) (out *http.Request, body []byte, known bool, err error) {
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			closeBody(req)
			return nil, nil, false, fmt.Errorf("openapi: copy request body: %w", err)
		}
		defer rc.Close()
		body, err = io.ReadAll(io.LimitReader(rc, maxRequestCapture+1))
		if err != nil {
			closeBody(req)
			return nil, nil, false, fmt.Errorf("openapi: copy request body: %w", err)
		}
		return req, body, len(body) <= maxRequestCapture, nil
	}
	body, err = io.ReadAll(io.LimitReader(req.Body, maxRequestCapture+1))
	out = req.Clone(req.Context())
	if err != nil {
		closeBody(req)
		return nil, nil, false, fmt.Errorf("openapi: read request body: %w", err)
	}
	if len(body) > maxRequestCapture {
		// Send what was read and the rest; closing closes the original.
		out.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), req.Body), req.Body}
		return out, nil, false, nil
	}
	closeBody(req)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return out, body, true, nil
}

// closeBody closes req.Body, as a RoundTripper must even when it fails.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// record notes that op was exercised (when it is not empty) and err (when
// it is not nil).
func (t *CheckingTransport) record(op string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if op != "" && !errors.Is(err, ErrUndocumented) {
		t.seen[op] = true
	}
	if err != nil {
		t.errs = append(t.errs, err)
	}
}

// Errors returns every failure so far, in the order the exchanges ended.
func (t *CheckingTransport) Errors() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.errs)
}

// Seen returns the operationIds of every exchange so far that matched a
// documented operation (whether or not it passed), sorted.
func (t *CheckingTransport) Seen() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.seen))
	for op := range t.seen {
		out = append(out, op)
	}
	slices.Sort(out)
	return out
}
