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

	"depot/server"
	"depot/server/api"
	"depot/server/client"
	"depot/store"
)

// fakeSled is a Sled with one function field per method; a nil field fails
// the call with an internal error.
type fakeSled struct {
	put        func(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error)
	open       func(ctx context.Context, d store.Digest) (*store.Blob, error)
	stat       func(ctx context.Context, d store.Digest) (store.Info, error)
	del        func(ctx context.Context, d store.Digest) error
	list       func(ctx context.Context) ([]store.Info, error)
	mirrors    func() []store.MirrorStatus
	generation func(ctx context.Context) (*uint64, error)
}

var _ server.Sled = (*fakeSled)(nil)

var errUnset = errors.New("fakeSled: method not set")

func (f *fakeSled) Put(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error) {
	if f.put == nil {
		return store.PutResult{}, errUnset
	}
	return f.put(ctx, d, body, size)
}

func (f *fakeSled) Open(ctx context.Context, d store.Digest) (*store.Blob, error) {
	if f.open == nil {
		return nil, errUnset
	}
	return f.open(ctx, d)
}

func (f *fakeSled) Stat(ctx context.Context, d store.Digest) (store.Info, error) {
	if f.stat == nil {
		return store.Info{}, errUnset
	}
	return f.stat(ctx, d)
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

// TestErrorTable_RoundTrip makes the server fail with every entry's error,
// wrapped as a domain package would, through a body-carrying call (PUT) and
// a body-less one (HEAD), and checks that the client maps the answer back
// to the same status, code and sentinel.
func TestErrorTable_RoundTrip(t *testing.T) {
	t.Parallel()
	var fail error
	f := &fakeSled{
		put: func(_ context.Context, d store.Digest, body io.Reader, _ int64) (store.PutResult, error) {
			io.Copy(io.Discard, body)
			return store.PutResult{}, fmt.Errorf("put %s to mirror /secret/path: %w", d, fail)
		},
		open: func(_ context.Context, d store.Digest) (*store.Blob, error) {
			return nil, fmt.Errorf("open %s on mirror /secret/path: %w", d, fail)
		},
		del: func(_ context.Context, d store.Digest) error {
			return fmt.Errorf("delete %s: %w", d, fail)
		},
	}
	e := newEnv(t, withSled(f))
	_, d := blob(t, 1)
	ctx := context.Background()
	for _, entry := range api.Entries() {
		t.Run(entry.Code, func(t *testing.T) {
			fail = entry.Err
			check := func(call string, err error, wantMessage bool) {
				t.Helper()
				var ae *client.APIError
				if !errors.As(err, &ae) {
					t.Fatalf("%s: %v is not an *APIError", call, err)
				}
				if ae.Status != entry.Status || ae.Code != entry.Code || ae.RequestID == "" {
					t.Errorf("%s: got %d %s (request %q), want %d %s", call, ae.Status, ae.Code, ae.RequestID, entry.Status, entry.Code)
				}
				if !errors.Is(err, entry.Err) {
					t.Errorf("%s: errors.Is(%v, %v) is false", call, err, entry.Err)
				}
				if wantMessage && ae.Message != entry.Message {
					t.Errorf("%s: message %q, want the entry's %q", call, ae.Message, entry.Message)
				}
				if strings.Contains(ae.Message, "/secret/path") {
					t.Errorf("%s: message leaks the internal error: %q", call, ae.Message)
				}
			}
			_, err := e.sled.PutArtifact(ctx, d, strings.NewReader("x"), 1)
			check("PUT", err, true)
			err = e.sled.DeleteArtifact(ctx, d)
			check("DELETE", err, true)
			_, err = e.depot.HeadArtifact(ctx, d)
			check("HEAD", err, false)
		})
	}
}

// TestErrorTable_Codes keeps the table well-formed: unique codes, each
// reachable by ForCode, statuses that are errors, messages present.
func TestErrorTable_Codes(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, en := range api.Entries() {
		if seen[en.Code] {
			t.Errorf("code %s twice", en.Code)
		}
		seen[en.Code] = true
		if got, ok := api.ForCode(en.Code); !ok || got.Err != en.Err {
			t.Errorf("ForCode(%s) = %v, %v", en.Code, got.Err, ok)
		}
		if en.Status < 400 || en.Message == "" || en.Err == nil {
			t.Errorf("entry %s: status %d, message %q, err %v", en.Code, en.Status, en.Message, en.Err)
		}
		if got, _ := api.ForError(fmt.Errorf("wrapped: %w", en.Err)); got.Code != en.Code {
			t.Errorf("ForError(wrapped %v) = %s, want %s (shadowed by an earlier entry?)", en.Err, got.Code, en.Code)
		}
	}
}

func TestServer_UnmappedError_Internal(t *testing.T) {
	t.Parallel()
	f := &fakeSled{list: func(context.Context) ([]store.Info, error) {
		return nil, errors.New("bbolt: /secret/index.db: disk on fire")
	}}
	e := newEnv(t, withSled(f))
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
	e := newEnv(t, withSled(f))
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
		list:       func(context.Context) ([]store.Info, error) { return nil, nil },
	}
	e := newEnv(t, withSled(f))
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
	f := &fakeSled{put: func(_ context.Context, _ store.Digest, body io.Reader, size int64) (store.PutResult, error) {
		io.Copy(io.Discard, body)
		sizes <- size
		return store.PutResult{Datasets: 2, SuccessfulWrites: 2}, nil
	}}
	e := newEnv(t, withSled(f))
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
	ln := listen(t)
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
	ln := listen(t)
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
	ln := listen(t)
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
