package openapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Validator checks requests and responses against the document. Create it
// with NewValidator; it is safe for concurrent use.
type Validator struct {
	doc    *openapi3.T // private copy, servers removed; never modified after NewValidator
	router routers.Router
	ops    []string // every operationId, sorted
}

// NewValidator loads Depot's document and builds a router over its paths.
func NewValidator() (*Validator, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	return NewValidatorFor(doc)
}

// NewValidatorFor builds a Validator over another document, such as one
// of omicron's (LoadOmicron). The Validator owns doc from then on.
func NewValidatorFor(doc *openapi3.T) (*Validator, error) {
	// Match on the path alone: the server URLs are the default listen
	// addresses, tests listen elsewhere, and the three APIs' paths do not
	// overlap. This copy of the document is ours to change.
	doc.Servers = nil
	var ops []string
	for _, item := range doc.Paths.Map() {
		item.Servers = nil
		for _, op := range item.Operations() {
			ops = append(ops, op.OperationID)
		}
	}
	slices.Sort(ops)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: build router: %w", err)
	}
	return &Validator{doc: doc, router: router, ops: ops}, nil
}

// Operations returns every operationId of the document, sorted: with
// CheckingTransport.Seen, what a conformance test has not exercised yet.
func (v *Validator) Operations() []string { return slices.Clone(v.ops) }

// Check validates one exchange: req and reqBody (its body; only read for
// operations that take JSON), resp and respBody (its body; only read for
// JSON and text responses). Check never reads req.Body or resp.Body.
//
// It returns an error wrapping ErrUndocumented when no operation matches
// the request's method and path, and one wrapping ErrMismatch, naming the
// operation and what differs, when:
//   - the response's status is not documented for the operation;
//   - a documented response header is missing or malformed;
//   - the Content-Type is not documented for that status, or a JSON or
//     text body does not match its schema, or a body arrived where none is
//     documented;
//   - the request violates the document (parameters, JSON body) and the
//     response is not a 4xx.
//
// Lenience: a JSON request body without Content-Type is taken as
// application/json; raw bodies are neither read nor checked; the request
// Content-Type of raw uploads is not checked; answers to HEAD are checked
// as the GET would be, without a body.
func (v *Validator) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	_, err := v.check(req, reqBody, true, resp, respBody)
	return err
}

// find returns the operation req addresses.
func (v *Validator) find(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := v.router.FindRoute(req)
	if err == nil {
		return route, params, nil
	}
	what := "path not in the document"
	if errors.Is(err, routers.ErrMethodNotAllowed) {
		what = "the document has no " + req.Method + " on this path"
	}
	return nil, nil, fmt.Errorf("%s %s: %w (%s)", req.Method, req.URL.Path, ErrUndocumented, what)
}

// check is Check. bodyKnown false means the request's JSON body was not
// captured (too large): its validation is skipped. It returns the
// operationId when the request matched one.
func (v *Validator) check(req *http.Request, reqBody []byte, bodyKnown bool, resp *http.Response, respBody []byte) (string, error) {
	route, params, err := v.find(req)
	if err != nil {
		return "", err
	}
	op := route.Operation
	status := resp.StatusCode
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%s (%s %s → %d): %w: %s", op.OperationID, req.Method, req.URL.RequestURI(), status,
			ErrMismatch, fmt.Sprintf(format, args...))
	}

	opts := &openapi3filter.Options{
		MultiError:          true,
		SkipSettingDefaults: true,
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
	}
	opts.WithCustomSchemaErrorFunc(schemaErrorText)
	ctx := context.Background()

	// The request, on a copy whose body is reqBody (or nothing).
	r := req.Clone(ctx)
	r.Body, r.GetBody = http.NoBody, nil
	reqOpts := *opts
	if takesJSON(op) && bodyKnown {
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		r.ContentLength = int64(len(reqBody))
		if r.Header.Get("Content-Type") == "" && len(reqBody) > 0 {
			r.Header.Set("Content-Type", "application/json")
		}
	} else {
		reqOpts.ExcludeRequestBody = true
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: &reqOpts}
	reqErr := openapi3filter.ValidateRequest(ctx, in)

	// The status first: openapi3filter skips some (304, HEAD) entirely.
	ref := op.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return op.OperationID, mismatch("status %d is not documented (documented: %s)",
			status, strings.Join(statuses(op), ", "))
	}
	if reqErr != nil && (status < 400 || status > 499) {
		return op.OperationID, mismatch("the request does not match the document (%v), yet the answer is not a 4xx", reqErr)
	}
	documented := ref.Value.Content

	// The response. openapi3filter ignores answers to HEAD altogether, so
	// check the headers against the HEAD operation as if the method were
	// GET, and leave the (absent) body alone.
	respOpts := *opts
	respOpts.IncludeResponseStatus = true
	rin := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: &respOpts}
	ct := resp.Header.Get("Content-Type")
	switch {
	case req.Method == http.MethodHead:
		rin.Request = r.Clone(ctx)
		rin.Request.Method = http.MethodGet
		respOpts.ExcludeResponseBody = true
	case raw(ct):
		if len(documented) == 0 || documented.Get(ct) == nil {
			return op.OperationID, mismatch("Content-Type %q is not documented for status %d (documented: %s)",
				ct, status, strings.Join(mediaTypes(documented), ", "))
		}
		respOpts.ExcludeResponseBody = true
	case len(documented) == 0 && len(respBody) > 0:
		return op.OperationID, mismatch("a %d-byte body (Content-Type %q) where status %d documents none",
			len(respBody), ct, status)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: rin,
		Status:                 status,
		Header:                 resp.Header,
		Options:                &respOpts,
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return op.OperationID, mismatch("%v", err)
	}
	return op.OperationID, nil
}

// takesJSON reports whether op's request body is documented as JSON.
func takesJSON(op *openapi3.Operation) bool {
	rb := op.RequestBody
	return rb != nil && rb.Value != nil && rb.Value.Content.Get("application/json") != nil
}

// raw reports whether a body of this Content-Type is bytes the validator
// leaves alone.
func raw(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/")
}

// textual reports whether a body of this Content-Type is small structured
// text the CheckingTransport buffers for validation.
func textual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json") || strings.HasPrefix(mt, "text/")
}

func statuses(op *openapi3.Operation) []string {
	var out []string
	for code := range op.Responses.Map() {
		out = append(out, code)
	}
	slices.SortFunc(out, func(a, b string) int {
		na, _ := strconv.Atoi(a)
		nb, _ := strconv.Atoi(b)
		return na - nb
	})
	return out
}

func mediaTypes(c openapi3.Content) []string {
	if len(c) == 0 {
		return []string{"none"}
	}
	out := make([]string, 0, len(c))
	for mt := range c {
		out = append(out, mt)
	}
	slices.Sort(out)
	return out
}

// schemaErrorText replaces kin-openapi's schema error text, which appends
// the whole schema and value, with the JSON pointer and the reason.
func schemaErrorText(err *openapi3.SchemaError) string {
	var b strings.Builder
	if p := err.JSONPointer(); len(p) > 0 {
		b.WriteString("at /" + strings.Join(p, "/") + ": ")
	}
	switch {
	case err.Reason != "":
		b.WriteString(err.Reason)
		// A format error's reason already quotes its origin; an allOf's
		// origin says which part failed.
		if err.Origin != nil && err.SchemaField != "format" {
			b.WriteString(": " + err.Origin.Error())
		}
	case err.Origin != nil:
		b.WriteString(err.Origin.Error())
	default:
		b.WriteString("does not match the schema's " + strconv.Quote(err.SchemaField))
	}
	switch val := err.Value.(type) {
	case string:
		if len(val) > 80 {
			val = val[:77] + "..."
		}
		fmt.Fprintf(&b, " (got %q)", val)
	case float64, bool:
		fmt.Fprintf(&b, " (got %v)", val)
	}
	return b.String()
}
