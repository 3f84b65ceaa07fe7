package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"depot/depot"
	"depot/server"
	"depot/server/api"
	"depot/server/client"
	"depot/server/servertest"
	"depot/store"
	"depot/tuf"
)

// fakeSled is a SledService with one function field per method; a nil
// field fails the call with an internal error (or returns nothing, for the
// methods without an error).
type fakeSled struct {
	put        func(ctx context.Context, d store.Digest, gen *uint64, body io.Reader, size int64) (store.PutResult, error)
	open       func(ctx context.Context, d store.Digest) (*store.Blob, error)
	del        func(ctx context.Context, d store.Digest) error
	list       func(ctx context.Context) ([]store.Info, error)
	mirrors    func() []store.MirrorStatus
	generation func(ctx context.Context) (*uint64, error)
	config     func() (depot.Config, error)
	setConfig  func(ctx context.Context, cfg depot.Config) error
	copyFrom   func(ctx context.Context, d store.Digest, gen *uint64, baseURL string) error
	waitCopy   func(ctx context.Context, d store.Digest, wait time.Duration) (depot.CopyJob, error)
	status     func() depot.SledStatus
}

var _ server.SledService = (*fakeSled)(nil)

var errUnset = errors.New("fakeSled: method not set")

func (f *fakeSled) Put(ctx context.Context, d store.Digest, gen *uint64, body io.Reader, size int64) (store.PutResult, error) {
	if f.put == nil {
		return store.PutResult{}, errUnset
	}
	return f.put(ctx, d, gen, body, size)
}

func (f *fakeSled) Open(ctx context.Context, d store.Digest) (*store.Blob, error) {
	if f.open == nil {
		return nil, errUnset
	}
	return f.open(ctx, d)
}

func (f *fakeSled) Delete(ctx context.Context, d store.Digest) error {
	if f.del == nil {
		return errUnset
	}
	return f.del(ctx, d)
}

func (f *fakeSled) List(ctx context.Context) ([]store.Info, error) {
	if f.list == nil {
		return nil, errUnset
	}
	return f.list(ctx)
}

func (f *fakeSled) Mirrors() []store.MirrorStatus {
	if f.mirrors == nil {
		return nil
	}
	return f.mirrors()
}

func (f *fakeSled) Generation(ctx context.Context) (*uint64, error) {
	if f.generation == nil {
		return nil, nil
	}
	return f.generation(ctx)
}

func (f *fakeSled) Config() (depot.Config, error) {
	if f.config == nil {
		return depot.Config{}, errUnset
	}
	return f.config()
}

func (f *fakeSled) SetConfig(ctx context.Context, cfg depot.Config) error {
	if f.setConfig == nil {
		return errUnset
	}
	return f.setConfig(ctx, cfg)
}

func (f *fakeSled) CopyFromDepot(ctx context.Context, d store.Digest, gen *uint64, baseURL string) error {
	if f.copyFrom == nil {
		return errUnset
	}
	return f.copyFrom(ctx, d, gen, baseURL)
}

func (f *fakeSled) Copies() []depot.CopyJob { return nil }

func (f *fakeSled) WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (depot.CopyJob, error) {
	if f.waitCopy == nil {
		return depot.CopyJob{}, errUnset
	}
	return f.waitCopy(ctx, d, wait)
}

func (f *fakeSled) StartScrub() {}

func (f *fakeSled) Status() depot.SledStatus {
	if f.status == nil {
		return depot.SledStatus{}
	}
	return f.status()
}

// TestErrorTable_RoundTrip makes the server fail with every entry's error,
// wrapped as a domain package would, through a body-carrying call (PUT), a
// body-less one (DELETE), a JSON one (copy-from-depot) and HEAD, and checks
// that the client maps the answer back to the same status, code and
// sentinel (the code's primary one), with the message the entry promises.
func TestErrorTable_RoundTrip(t *testing.T) {
	t.Parallel()
	var fail error
	f := &fakeSled{
		put: func(_ context.Context, d store.Digest, _ *uint64, body io.Reader, _ int64) (store.PutResult, error) {
			io.Copy(io.Discard, body)
			return store.PutResult{}, fail
		},
		open: func(_ context.Context, d store.Digest) (*store.Blob, error) { return nil, fail },
		del:  func(_ context.Context, d store.Digest) error { return fail },
		copyFrom: func(_ context.Context, d store.Digest, _ *uint64, _ string) error {
			return fail
		},
	}
	e := newEnv(t, withFake(f))
	_, d := blob(t, 1)
	ctx := context.Background()
	for i, entry := range server.ErrorEntries() {
		t.Run(fmt.Sprintf("%02d_%s", i, entry.Code), func(t *testing.T) {
			// Public entries show the domain's text, so wrap as the domain
			// does (operation and object); the others must hide the text,
			// so wrap with something secret.
			wrapped := fmt.Errorf("put %s to mirror /secret/path: %w", d, entry.Err)
			wantMsg := entry.Message
			if entry.Public && entry.Status < 500 {
				wrapped = fmt.Errorf("%w: artifact %s at generation 3", entry.Err, d)
				wantMsg = wrapped.Error()
			}
			fail = wrapped
			sentinel := api.ErrForCode(entry.Code)
			check := func(call string, err error, wantMessage bool) {
				t.Helper()
				var ae *client.APIError
				if !errors.As(err, &ae) {
					t.Fatalf("%s: %v is not an *APIError", call, err)
				}
				if ae.Status != entry.Status || ae.Code != entry.Code || ae.RequestID == "" {
					t.Errorf("%s: got %d %s (request %q), want %d %s", call, ae.Status, ae.Code, ae.RequestID, entry.Status, entry.Code)
				}
				if !errors.Is(err, sentinel) {
					t.Errorf("%s: errors.Is(%v, %v) is false", call, err, sentinel)
				}
				if wantMessage && ae.Message != wantMsg {
					t.Errorf("%s: message %q, want %q", call, ae.Message, wantMsg)
				}
				if strings.Contains(ae.Message, "/secret/path") {
					t.Errorf("%s: message leaks the internal error: %q", call, ae.Message)
				}
				if ae.RetryAfter != entry.RetryAfter {
					t.Errorf("%s: Retry-After %v, want %v", call, ae.RetryAfter, entry.RetryAfter)
				}
			}
			_, err := e.sled.PutArtifact(ctx, d, strings.NewReader("x"), 1)
			check("PUT", err, true)
			err = e.sled.DeleteArtifact(ctx, d)
			check("DELETE", err, true)
			err = e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1")
			check("POST copy-from-depot", err, true)
			_, err = e.depot.HeadArtifact(ctx, d)
			check("HEAD", err, false)
		})
	}
}

// TestErrorTable_Codes keeps the table well-formed: the entries of a code
// share its status, every code has its api sentinel, statuses are errors,
// messages present, no entry is shadowed by an earlier one.
func TestErrorTable_Codes(t *testing.T) {
	t.Parallel()
	first := map[string]server.ErrorEntry{}
	for _, en := range server.ErrorEntries() {
		if p, ok := first[en.Code]; ok {
			if p.Status != en.Status {
				t.Errorf("code %s has statuses %d and %d", en.Code, p.Status, en.Status)
			}
		} else {
			first[en.Code] = en
			if api.ErrForCode(en.Code) == nil {
				t.Errorf("code %s has no sentinel in server/api", en.Code)
			}
		}
		if en.Status < 400 || en.Message == "" || en.Err == nil {
			t.Errorf("entry %s: status %d, message %q, err %v", en.Code, en.Status, en.Message, en.Err)
		}
		if got, _ := server.ForError(fmt.Errorf("wrapped: %w", en.Err)); got.Err != en.Err {
			t.Errorf("ForError(wrapped %v) = %s (%v), want %s (shadowed by an earlier entry?)", en.Err, got.Code, got.Err, en.Code)
		}
	}
}

// TestErrorTable_Order pins the orderings that errors wrapping several
// sentinels depend on.
func TestErrorTable_Order(t *testing.T) {
	t.Parallel()
	tooLarge := &tuf.Error{Check: tuf.CheckArchive, Err: fmt.Errorf("%w: more than 10 bytes expanded", tuf.ErrTooLarge)}
	badRoot := &tuf.Error{Check: tuf.CheckRoot, Err: errors.New("not self-signed")}
	for _, c := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("%w: %w", depot.ErrRepoInvalid, tooLarge), api.CodeTooLarge},
		{fmt.Errorf("%w: %w", depot.ErrTrustRootInvalid, badRoot), api.CodeTrustRootInvalid},
		{fmt.Errorf("%w: stage x: %w", depot.ErrRepoInvalid, store.ErrHashMismatch), api.CodeRepositoryInvalid},
		{fmt.Errorf("%w: control_url: %w", depot.ErrInvalidSled, depot.ErrInvalidSource), api.CodeInvalidSled},
		{badRoot, api.CodeRepositoryInvalid},
		{fmt.Errorf("put x: %w: %w", store.ErrBusy, store.ErrNoMirrors), api.CodeServerBusy},
	} {
		if got, _ := server.ForError(c.err); got.Code != c.code {
			t.Errorf("ForError(%v) = %s, want %s", c.err, got.Code, c.code)
		}
	}
}

func TestServer_UnmappedError_Internal(t *testing.T) {
	t.Parallel()
	f := &fakeSled{list: func(context.Context) ([]store.Info, error) {
		return nil, errors.New("bbolt: /secret/index.db: disk on fire")
	}}
	e := newEnv(t, withFake(f))
	resp, body := do(t, "GET", "http://"+e.sledAddr+"/artifacts", nil)
	eb := wantError(t, resp, body, 500, "INTERNAL")
	if strings.Contains(eb.Message, "fire") || strings.Contains(string(body), "secret") {
		t.Fatalf("500 leaks the error: %s", body)
	}
	e.waitLog(t, `level=ERROR msg=request request_id=`+eb.RequestID+` .*status=500 .*disk on fire`)
}

func TestServer_Panic_Internal(t *testing.T) {
	t.Parallel()
	f := &fakeSled{list: func(context.Context) ([]store.Info, error) { panic("boom") }}
	e := newEnv(t, withFake(f))
	resp, body := do(t, "GET", "http://"+e.sledAddr+"/artifacts", nil)
	eb := wantError(t, resp, body, 500, "INTERNAL")
	e.waitLog(t, `msg="panic in handler" request_id=`+eb.RequestID)
	// The server lives on.
	resp, _ = do(t, "GET", "http://"+e.sledAddr+"/status", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status after panic: %d", resp.StatusCode)
	}
}

func TestServer_Generation_FromSled(t *testing.T) {
	t.Parallel()
	g := uint64(7)
	f := &fakeSled{
		generation: func(context.Context) (*uint64, error) { return &g, nil },
		status:     func() depot.SledStatus { return depot.SledStatus{Generation: &g} },
		list:       func(context.Context) ([]store.Info, error) { return nil, nil },
	}
	e := newEnv(t, withFake(f))
	gen, list, err := e.sled.ListArtifacts(context.Background())
	if err != nil || gen == nil || *gen != 7 || len(list) != 0 {
		t.Fatalf("list = %v %v %v", gen, list, err)
	}
	st, err := e.sled.Status(context.Background())
	if err != nil || st.Generation == nil || *st.Generation != 7 || st.Mirrors == nil {
		t.Fatalf("status = %+v %v", st, err)
	}
}

func TestServer_PutArtifact_SizePassedToSled(t *testing.T) {
	t.Parallel()
	sizes := make(chan int64, 2)
	f := &fakeSled{put: func(_ context.Context, _ store.Digest, _ *uint64, body io.Reader, size int64) (store.PutResult, error) {
		io.Copy(io.Discard, body)
		sizes <- size
		return store.PutResult{Datasets: 2, SuccessfulWrites: 2}, nil
	}}
	e := newEnv(t, withFake(f))
	_, d := blob(t, 1)
	for _, size := range []int64{5, -1} {
		if _, err := e.sled.PutArtifact(context.Background(), d, bytes.NewReader([]byte("hello")), size); err != nil {
			t.Fatal(err)
		}
		if got := <-sizes; got != size {
			t.Errorf("sled got size %d, want %d", got, size)
		}
	}
}

func TestClient_StalledServer(t *testing.T) {
	t.Parallel()
	// A server that accepts and never answers.
	ln := servertest.Listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	c := client.New("http://"+ln.Addr().String(), nil)
	c.StallTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err := c.Status(context.Background())
	if !errors.Is(err, client.ErrStalled) || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %v, want ErrStalled after ~200ms", err, time.Since(start))
	}
}

func TestClient_ConnectionRefused(t *testing.T) {
	t.Parallel()
	ln := servertest.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	_, err := client.New("http://"+addr, nil).Status(context.Background())
	var ae *client.APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("err = %v, want a transport error", err)
	}
}

func TestClient_NonJSONError(t *testing.T) {
	t.Parallel()
	ln := servertest.Listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf)
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nproxy error")
	}()
	_, err := client.New("http://"+ln.Addr().String(), nil).Status(context.Background())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "" || ae.Message != "proxy error" || errors.Unwrap(err) != nil {
		t.Fatalf("err = %#v", err)
	}
}
