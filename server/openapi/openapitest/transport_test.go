package openapitest_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/server/openapi/openapitest"
)

// onlyReader hides strings.Reader's type from http.NewRequest, so the
// request has no GetBody and the transport must read and replace Body.
type onlyReader struct{ io.Reader }

// fakeSled answers a few sled routes, some of them wrongly. The artifact
// download sends its first chunk, then waits for release: a transport
// that buffered raw bodies would never return.
type fakeSled struct {
	release  chan struct{}
	once     sync.Once
	mu       sync.Mutex
	received map[string]int // path → request body bytes
}

const chunk = 1 << 20

func newFakeSled(t *testing.T) (*fakeSled, *httptest.Server) {
	t.Helper()
	f := &fakeSled{release: make(chan struct{}), received: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /artifacts/{h}", func(w http.ResponseWriter, r *http.Request) {
		f.read(r)
		writeJSON(w, 200, `{"datasets":2,"successful_writes":2}`)
	})
	mux.HandleFunc("POST /artifacts/{h}/copy-from-depot", func(w http.ResponseWriter, r *http.Request) {
		f.read(r)
		writeJSON(w, 202, `{}`)
	})
	mux.HandleFunc("PUT /artifacts-config", func(w http.ResponseWriter, r *http.Request) {
		f.read(r)
		w.Header().Set("X-Error-Code", "TOO_LARGE")
		writeJSON(w, 413, errBody("TOO_LARGE"))
	})
	mux.HandleFunc("GET /artifacts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"generation":null,"list":{"`+hashA+`":2}}`)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"version":"dev","mirrors":[]}`) // most of it missing
	})
	mux.HandleFunc("GET /artifacts/{h}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("ETag", `"`+r.PathValue("h")+`"`)
		h.Set("Content-Length", strconv.Itoa(2*chunk))
		w.WriteHeader(200)
		w.Write(bytes.Repeat([]byte{'a'}, chunk))
		w.(http.Flusher).Flush()
		select {
		case <-f.release:
		case <-r.Context().Done():
			return
		}
		w.Write(bytes.Repeat([]byte{'b'}, chunk))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Error-Code", "NOT_FOUND")
		writeJSON(w, 404, errBody("NOT_FOUND"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(f.unblock) // runs before srv.Close
	return f, srv
}

// unblock lets the artifact download finish.
func (f *fakeSled) unblock() { f.once.Do(func() { close(f.release) }) }

func (f *fakeSled) read(r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	f.received[r.URL.Path] += int(n)
	f.mu.Unlock()
}

func (f *fakeSled) got(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received[path]
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "r1")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func do(t *testing.T, c *http.Client, method, url string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckingTransport_RoundTrip(t *testing.T) {
	f, srv := newFakeSled(t)
	tr := newValidator(t).Transport(nil)
	c := &http.Client{Transport: tr}

	// Good exchanges, some concurrent.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", srv.URL+"/artifacts/"+hashA, strings.NewReader("hello"))
			if resp, err := c.Do(req); err != nil {
				t.Error(err)
			} else {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if got := f.got("/artifacts/" + hashA); got != 4*len("hello") {
		t.Errorf("server received %d body bytes of PUT, want %d", got, 4*len("hello"))
	}
	const copyReq = `{"depot_base_url":"http://10.0.0.2:12348"}`
	resp := do(t, c, "POST", srv.URL+"/artifacts/"+hashA+"/copy-from-depot", onlyReader{strings.NewReader(copyReq)})
	if body := readBody(t, resp); resp.StatusCode != 202 || body != "{}" {
		t.Errorf("copy-from-depot: %d %q", resp.StatusCode, body)
	}
	if got := f.got("/artifacts/" + hashA + "/copy-from-depot"); got != len(copyReq) {
		t.Errorf("server received %d bytes of the copy request, want %d", got, len(copyReq))
	}
	resp = do(t, c, "GET", srv.URL+"/artifacts", nil)
	if body := readBody(t, resp); !strings.Contains(body, hashA) {
		t.Errorf("GET /artifacts: the client got %q", body)
	}

	// A JSON body over the capture limit reaches the server whole and is
	// not validated (nor reported).
	big := `{"generation":1,"artifacts":["` + strings.Repeat("0", 9<<20) + `"]}`
	resp = do(t, c, "PUT", srv.URL+"/artifacts-config", onlyReader{strings.NewReader(big)})
	readBody(t, resp)
	if got := f.got("/artifacts-config"); got != len(big) {
		t.Errorf("server received %d bytes of the big config, want %d", got, len(big))
	}

	// A raw download streams: RoundTrip returns after the first chunk.
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", srv.URL+"/artifacts/"+hashB, nil)
		resp, err := c.Do(req)
		done <- result{resp, err}
	}()
	var dl result
	select {
	case dl = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("GET of a raw artifact did not return before its body ended: the transport buffers raw bodies")
	}
	if dl.err != nil {
		t.Fatal(dl.err)
	}
	first := make([]byte, chunk)
	if _, err := io.ReadFull(dl.resp.Body, first); err != nil {
		t.Fatal(err)
	}
	f.unblock()
	rest := readBody(t, dl.resp)
	if first[0] != 'a' || first[chunk-1] != 'a' || len(rest) != chunk || rest[0] != 'b' {
		t.Errorf("download: %d + %d bytes, not the server's", len(first), len(rest))
	}

	// Bad exchanges: recorded, and the client still gets the response.
	resp = do(t, c, "POST", srv.URL+"/artifacts/"+hashA+"/copy-from-depot", strings.NewReader(`{"url":"x"}`))
	readBody(t, resp)
	resp = do(t, c, "GET", srv.URL+"/status", nil)
	if body := readBody(t, resp); body != `{"version":"dev","mirrors":[]}` {
		t.Errorf("GET /status: the client got %q", body)
	}
	resp = do(t, c, "GET", srv.URL+"/nope", nil)
	if body := readBody(t, resp); resp.StatusCode != 404 || !strings.Contains(body, "NOT_FOUND") {
		t.Errorf("GET /nope: %d %q", resp.StatusCode, body)
	}

	errs := tr.Errors()
	if len(errs) != 3 {
		t.Fatalf("Errors() = %d errors, want 3: %v", len(errs), errs)
	}
	for i, want := range []struct {
		is      error
		mention string
	}{
		{openapitest.ErrMismatch, "artifact_copy_from_depot"},
		{openapitest.ErrMismatch, "status_get"},
		{openapitest.ErrUndocumented, "/nope"},
	} {
		if !errors.Is(errs[i], want.is) || !strings.Contains(errs[i].Error(), want.mention) {
			t.Errorf("Errors()[%d] = %v, want %v about %s", i, errs[i], want.is, want.mention)
		}
	}
	wantSeen := []string{"artifact_config_put", "artifact_copy_from_depot", "artifact_get", "artifact_list", "artifact_put", "status_get"}
	if seen := tr.Seen(); !slices.Equal(seen, wantSeen) {
		t.Errorf("Seen() = %v, want %v", seen, wantSeen)
	}
}

func TestCheckingTransport_RoundTrip_TransportError(t *testing.T) {
	tr := newValidator(t).Transport(nil)
	c := &http.Client{Transport: tr}
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if _, err := c.Get(url + "/status"); err == nil {
		t.Fatal("GET from a closed server succeeded")
	}
	if errs, seen := tr.Errors(), tr.Seen(); len(errs) != 0 || len(seen) != 0 {
		t.Errorf("after a transport error: Errors() = %v, Seen() = %v; want none", errs, seen)
	}
}
