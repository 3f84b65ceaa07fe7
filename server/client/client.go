// Package client is the Go client of a sled's HTTP APIs, used by the
// coordinator, by copy-from (to fetch from a peer's depot port) and by the
// CLI. Error answers come back as *APIError values that unwrap to the same
// sentinels the server matched (errors.Is(err, store.ErrHashMismatch)).
//
// # Basics
//
// A Client talks to one base URL. The sled API (PutArtifact,
// DeleteArtifact, ListArtifacts, Status) lives on a sled's --listen port,
// the repo-depot API (GetArtifact, HeadArtifact) on its --depot-listen
// port, so a caller that needs both makes two Clients; they may share one
// *http.Client.
//
// # Caveats
//
// There is no overall request timeout, because bodies are long. Instead
// every call fails with ErrStalled when no byte moves, in either direction,
// for StallTimeout; and DefaultHTTPClient bounds connecting.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"depot/server/api"
	"depot/store"
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
}

// New returns a Client for baseURL ("http://host:port"). A nil httpClient
// means DefaultHTTPClient().
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = DefaultHTTPClient()
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: httpClient, StallTimeout: DefaultStallTimeout}
}

// DefaultHTTPClient returns an http.Client suited to sled traffic: a 5 s
// connect timeout, no overall timeout (bodies are long), no proxy (sleds
// talk on the rack network) and no transparent gzip (lengths must be the
// artifact's).
func DefaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.DisableCompression = true
	t.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: t}
}

// APIError is an error answer from the server. It unwraps to the sentinel
// that the server mapped to Code (nil for a code this client does not know).
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("depot: %d %s: %s (request_id %s)", e.Status, code, e.Message, e.RequestID)
}

// Unwrap returns the sentinel for Code, so errors.Is works across the wire.
func (e *APIError) Unwrap() error {
	if en, ok := api.ForCode(e.Code); ok {
		return en.Err
	}
	return nil
}

// PutArtifact uploads body as the artifact d: PUT /artifacts/{sha256} on
// the sled API. size is body's length, or -1 to send it chunked. body is
// read to its end or until an error, and is not closed.
func (c *Client) PutArtifact(ctx context.Context, d store.Digest, body io.Reader, size int64) (PutResult, error) {
	var res PutResult
	err := c.do(ctx, http.MethodPut, "/artifacts/"+d.String(), body, size, http.StatusOK, func(r *http.Response) error {
		return decodeJSON(r, &res)
	})
	return res, err
}

// GetArtifact downloads d: GET /artifact/sha256/{sha256} on the depot API.
// It returns the body and its length; the caller must close the body. The
// bytes are not checked against d here: whoever stores them does that.
func (c *Client) GetArtifact(ctx context.Context, d store.Digest) (io.ReadCloser, int64, error) {
	var rc io.ReadCloser
	var size int64
	err := c.do(ctx, http.MethodGet, "/artifact/sha256/"+d.String(), nil, 0, http.StatusOK, func(r *http.Response) error {
		rc, size = r.Body, r.ContentLength
		return errKeepBody
	})
	return rc, size, err
}

// HeadArtifact returns d's length without downloading it: HEAD
// /artifact/sha256/{sha256} on the depot API.
func (c *Client) HeadArtifact(ctx context.Context, d store.Digest) (int64, error) {
	var size int64
	err := c.do(ctx, http.MethodHead, "/artifact/sha256/"+d.String(), nil, 0, http.StatusOK, func(r *http.Response) error {
		size = r.ContentLength
		return nil
	})
	return size, err
}

// DeleteArtifact removes d from the sled; nil when it was absent.
func (c *Client) DeleteArtifact(ctx context.Context, d store.Digest) error {
	return c.do(ctx, http.MethodDelete, "/artifacts/"+d.String(), nil, 0, http.StatusNoContent, nil)
}

// ListArtifacts returns the sled's config generation (nil while unmanaged)
// and every artifact with the number of mirrors holding it.
func (c *Client) ListArtifacts(ctx context.Context) (*uint64, map[store.Digest]int, error) {
	var res api.ListResponse
	err := c.do(ctx, http.MethodGet, "/artifacts", nil, 0, http.StatusOK, func(r *http.Response) error {
		return decodeJSON(r, &res)
	})
	if err != nil {
		return nil, nil, err
	}
	if res.List == nil {
		res.List = map[store.Digest]int{}
	}
	return res.Generation, res.List, nil
}

// Status returns the sled's GET /status.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var res StatusResponse
	err := c.do(ctx, http.MethodGet, "/status", nil, 0, http.StatusOK, func(r *http.Response) error {
		return decodeJSON(r, &res)
	})
	return res, err
}

// errKeepBody tells do that onOK took ownership of the response body.
var errKeepBody = errors.New("keep body")

// do sends one request and hands a response with status want to onOK (nil:
// ignore the body); any other status becomes an *APIError. A stall
// watchdog, re-armed by every byte that moves, cancels the request when
// nothing moves for StallTimeout.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, size int64, want int, onOK func(*http.Response) error) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := newWatchdog(c.StallTimeout, cancel)
	keep := false
	defer func() {
		if !keep {
			w.stop()
			cancel(nil)
		}
		if err != nil && errors.Is(context.Cause(ctx), ErrStalled) {
			err = fmt.Errorf("%s %s: %w after %s without progress (%v)", method, path, ErrStalled, c.StallTimeout, err)
		}
	}()

	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	if body != nil {
		// Our own reader: the transport must neither close the caller's
		// reader nor guess the length from its type.
		req.Body = io.NopCloser(progressReader{body, w})
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	w.progress()
	if resp.StatusCode != want {
		defer resp.Body.Close()
		return decodeError(resp)
	}
	if onOK == nil {
		resp.Body.Close()
		return nil
	}
	resp.Body = &progressBody{ReadCloser: resp.Body, ctx: ctx, w: w, done: func() { w.stop(); cancel(nil) }}
	if err := onOK(resp); err != nil {
		if err == errKeepBody {
			keep = true
			return nil
		}
		resp.Body.Close()
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	resp.Body.Close()
	return nil
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

func decodeError(resp *http.Response) error {
	e := &APIError{
		Status:    resp.StatusCode,
		Code:      resp.Header.Get(api.ErrorCodeHeader),
		RequestID: resp.Header.Get(api.RequestIDHeader),
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

// watchdog cancels a request after d without progress. Safe for
// concurrent use (the transport reads the request body while the caller
// may already read the response).
type watchdog struct {
	mu    sync.Mutex
	d     time.Duration
	timer *time.Timer // nil when disabled
}

func newWatchdog(d time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{d: d}
	if d > 0 {
		w.timer = time.AfterFunc(d, func() { cancel(ErrStalled) })
	}
	return w
}

func (w *watchdog) progress() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.timer.Reset(w.d)
	w.mu.Unlock()
}

func (w *watchdog) stop() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

type progressReader struct {
	r io.Reader
	w *watchdog
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.progress()
	}
	return n, err
}

// progressBody re-arms the watchdog as the response body is read, and
// releases the request when closed.
type progressBody struct {
	io.ReadCloser
	ctx  context.Context
	w    *watchdog
	once sync.Once
	done func()
}

func (p *progressBody) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		p.w.progress()
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
