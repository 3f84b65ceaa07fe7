// Package client is the Go client of a sled's HTTP APIs, used by the
// coordinator, by copy-from (to fetch from a peer's depot port) and by the
// CLI. Error answers come back as *APIError values that unwrap to the
// server/api sentinel of their error_code (errors.Is(err,
// api.ErrHashMismatch)). It links no domain package: bodies are the types
// of server/api.
//
// # Basics
//
// A Client talks to one base URL. The sled API (PutArtifact, GetConfig,
// CopyFromDepot, Copies, Status, ...) lives on a daemon's --listen port,
// the operator API of a coordinator (UploadRepo, Repos, TrustRoots, Sleds,
// ReplicationStatus, ...) on its --operator-listen port, and the
// repo-depot API (GetArtifact, HeadArtifact) on its --depot-listen port:
// a caller makes one Client per API; they may share one *http.Client
// (NewHTTPClient, which speaks TLS with the daemon's certificates).
//
// Fetcher is the one outbound path of a sled: NewFetcher gives it the
// SourcePolicy that every fetch and HEAD obeys (allowed sources, the
// largest Content-Length, no redirects), and its errors carry nothing the
// source sent. Package server/remote adapts a Fetcher to the depot
// package's Peer (for copy-from-depot jobs) and a Client to its
// SledClient (for the coordinator).
//
// # Caveats
//
// There is no overall request timeout, because bodies are long. Instead
// every call fails with ErrStalled when no byte moves, in either direction,
// for StallTimeout (long-polls get their wait on top); and
// DefaultHTTPClient bounds connecting.
//
// Every 404 NOT_FOUND unwraps to api.ErrNotFound, whatever the call looked
// for; server/remote maps codes back to domain sentinels for the depot
// package's callers.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"depot/depot/stall"
	"depot/server/api"
)

// PutResult is what PutArtifact returns.
type PutResult = api.PutResult

// StatusResponse is what Status returns.
type StatusResponse = api.StatusResponse

// DefaultStallTimeout is a new Client's StallTimeout.
const DefaultStallTimeout = time.Minute

// ErrStalled is returned when no byte of a request or response moved for
// Client.StallTimeout.
var ErrStalled = errors.New("transfer stalled")

// Client calls one sled API base URL. Safe for concurrent use once its
// fields are set.
type Client struct {
	base string
	hc   *http.Client
	// StallTimeout bounds the time without progress (waiting for the
	// response counts as no progress); <= 0 disables the check.
	StallTimeout time.Duration
	// Token, if set, is sent as "Authorization: Bearer <Token>" with every
	// request: set it only on a Client of the operator API.
	Token string
}

// New returns a Client for baseURL ("http://host:port"). A nil httpClient
// means DefaultHTTPClient().
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = DefaultHTTPClient()
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: httpClient, StallTimeout: DefaultStallTimeout}
}

// DefaultHTTPClient returns an http.Client suited to sled traffic:
// NewHTTPClient(nil) (a 5 s connect timeout, no overall timeout, no proxy,
// no transparent gzip, no redirects followed, https against the system
// roots).
func DefaultHTTPClient() *http.Client { return NewHTTPClient(nil) }

// APIError is an error answer from the server. It unwraps to the server/api
// sentinel of Code (nil for a code this client does not know).
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	// RetryAfter is the Retry-After the server sent (429
	// TOO_MANY_COPIES), or 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("depot: %d %s: %s (request_id %s)", e.Status, code, e.Message, e.RequestID)
}

// Unwrap returns api.ErrForCode(Code), so errors.Is works across the wire.
func (e *APIError) Unwrap() error { return api.ErrForCode(e.Code) }

// errKeepBody tells do that onOK took ownership of the response body.
var errKeepBody = errors.New("keep body")

// call is one request of a Client method.
type call struct {
	method, path string
	query        url.Values
	// body is sent raw (contentType application/octet-stream) with size
	// as its length (-1: chunked), or JSON when json is set.
	body        io.Reader
	size        int64
	json        any
	contentType string
	// want lists the statuses of success (the first is the usual one).
	want []int
	// wait is the long-poll wait the server may take before answering,
	// added to the stall budget.
	wait time.Duration
	// onOK reads a successful response (nil: ignore the body).
	onOK func(*http.Response) error
}

// decodeInto returns an onOK that decodes a JSON body into v.
func decodeInto(v any) func(*http.Response) error {
	return func(r *http.Response) error { return decodeJSON(r, v) }
}

// do sends one request and hands a response with a wanted status to onOK;
// any other status becomes an *APIError. A stall watchdog, re-armed by
// every byte that moves, cancels the request when nothing moves for
// StallTimeout (plus the call's wait).
func (c *Client) do(ctx context.Context, k call) (err error) {
	stallAfter := c.StallTimeout
	if stallAfter > 0 && k.wait > 0 {
		stallAfter += k.wait
	}
	ctx, cancel := context.WithCancelCause(ctx)
	w := stall.New(stallAfter, func() { cancel(ErrStalled) })
	keep := false
	defer func() {
		if !keep {
			w.Stop()
			cancel(nil)
		}
		if err != nil && errors.Is(context.Cause(ctx), ErrStalled) {
			err = fmt.Errorf("%s %s: %w after %s without progress (%v)", k.method, k.path, ErrStalled, stallAfter, err)
		}
	}()

	u := c.base + k.path
	if len(k.query) > 0 {
		u += "?" + k.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u, nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set(api.AuthorizationHeader, "Bearer "+c.Token)
	}
	body, size, ctype := k.body, k.size, k.contentType
	if k.json != nil {
		b, err := json.Marshal(k.json)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", k.method, k.path, err)
		}
		body, size, ctype = bytes.NewReader(b), int64(len(b)), "application/json"
	}
	if body != nil {
		// Our own reader: the transport must neither close the caller's
		// reader nor guess the length from its type.
		req.Body = io.NopCloser(&stall.Reader{R: body, Progress: func(int) { w.Progress() }})
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", k.method, k.path, err)
	}
	w.Progress()
	if !slices.Contains(k.want, resp.StatusCode) {
		defer resp.Body.Close()
		return decodeError(resp)
	}
	if k.onOK == nil {
		resp.Body.Close()
		return nil
	}
	resp.Body = &progressBody{ReadCloser: resp.Body, ctx: ctx, w: w, done: func() { w.Stop(); cancel(nil) }}
	if err := k.onOK(resp); err != nil {
		if err == errKeepBody {
			keep = true
			return nil
		}
		resp.Body.Close()
		return fmt.Errorf("%s %s: %w", k.method, k.path, err)
	}
	resp.Body.Close()
	return nil
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

func decodeError(resp *http.Response) *APIError {
	e := &APIError{
		Status:    resp.StatusCode,
		Code:      resp.Header.Get(api.ErrorCodeHeader),
		RequestID: resp.Header.Get(api.RequestIDHeader),
	}
	if s, err := strconv.Atoi(resp.Header.Get(api.RetryAfterHeader)); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb api.ErrorBody
	if err := json.Unmarshal(b, &eb); err == nil && eb.ErrorCode != "" {
		e.Code, e.Message = eb.ErrorCode, eb.Message
		if eb.RequestID != "" {
			e.RequestID = eb.RequestID
		}
	} else if len(b) > 0 {
		// Not one of ours (a proxy?): keep the start of what it said.
		e.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
	}
	return e
}

func decodeJSON(r *http.Response, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// progressBody re-arms the watchdog as the response body is read, and
// releases the request when closed.
type progressBody struct {
	io.ReadCloser
	ctx  context.Context
	w    *stall.Watchdog
	once sync.Once
	done func()
}

func (p *progressBody) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		p.w.Progress()
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(p.ctx), ErrStalled) {
		err = fmt.Errorf("read body: %w (%v)", ErrStalled, err)
	}
	return n, err
}

func (p *progressBody) Close() error {
	err := p.ReadCloser.Close()
	p.once.Do(p.done)
	return err
}
