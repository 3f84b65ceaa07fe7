package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
	"depot/server/servertest"
)

// waitCopy long-polls B's copy job for d until it leaves running.
func (e *env) waitCopy(t testing.TB, d api.Digest) api.CopyJob {
	t.Helper()
	for range 10 {
		job, err := e.sled.Copy(context.Background(), d, 5*time.Second)
		if err != nil {
			t.Fatalf("copy job %s: %v", d, err)
		}
		if job.State != api.CopyRunning && job.State != api.CopyQueued {
			return job
		}
	}
	t.Fatalf("copy of %s still queued or running after 50s", d)
	return api.CopyJob{}
}

func TestServer_Copy_BetweenTwoServers(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := newEnv(t)
	ctx := context.Background()
	data, d := a.putBlob(t, 3<<20+5)

	if err := b.sled.CopyFromDepot(ctx, d, nil, a.depotURL); err != nil {
		t.Fatal(err)
	}
	job := b.waitCopy(t, d)
	if job.State != api.CopySucceeded || job.Bytes != int64(len(data)) || job.Source != a.depotURL ||
		job.Finished.IsZero() || job.Error != "" {
		t.Fatalf("job = %+v", job)
	}
	b.checkMirrors(t, d)
	rc, n, err := b.depot.GetArtifact(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatal("B serves other bytes than A")
	}
	jobs, err := b.sled.Copies(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].Hash != d {
		t.Fatalf("copies = %+v, %v", jobs, err)
	}
	st, _ := b.sled.Status(ctx)
	if st.Copies.Succeeded != 1 || st.Copies.Running != 0 {
		t.Fatalf("status copies = %+v", st.Copies)
	}
}

// TestServer_Copy_Burst: Nexus sends up to 8 copy requests at once; a
// burst of 16 over HTTP, with the default limits, is 16 × 202 and 16
// artifacts stored.
func TestServer_Copy_Burst(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := newEnv(t)
	var ds []api.Digest
	for range 16 {
		_, d := a.putBlob(t, 64<<10)
		ds = append(ds, d)
	}
	statuses := make(chan int, len(ds))
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() {
			resp, _ := do(t, "POST", b.sledURL+"/artifacts/"+strings.ToUpper(d.String())+"/copy-from-depot",
				strings.NewReader(`{"depot_base_url":"`+a.depotURL+`"}`))
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusAccepted {
			t.Fatalf("a copy of the burst got %d, want 202", st)
		}
	}
	for _, d := range ds {
		if job := b.waitCopy(t, d); job.State != api.CopySucceeded {
			t.Fatalf("job = %+v", job)
		}
	}
	b.checkMirrors(t, ds...)
}

// TestServer_Copy_SourceChecked: the source is asked before the 202; its
// failures are 502 with a code and a fixed message, and no job.
func TestServer_Copy_SourceChecked(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := newEnv(t)
	_, d := blob(t, 1000) // a does not hold it
	closed := servertest.Listen(t)
	deadURL := "http://" + closed.Addr().String()
	closed.Close()
	for _, c := range []struct {
		source, code string
	}{
		{a.depotURL, "SOURCE_NOT_FOUND"},
		{deadURL, "SOURCE_UNAVAILABLE"},
	} {
		resp, body := do(t, "POST", b.sledURL+"/artifacts/"+d.String()+"/copy-from-depot",
			strings.NewReader(`{"depot_base_url":"`+c.source+`"}`))
		eb := wantError(t, resp, body, http.StatusBadGateway, c.code)
		if strings.Contains(eb.Message, "127.0.0.1") || strings.Contains(eb.Message, "refused") {
			t.Errorf("%s: the message repeats the source's failure: %q", c.code, eb.Message)
		}
	}
	if jobs, err := b.sled.Copies(context.Background()); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs after refused copies: %+v, %v", jobs, err)
	}
	err := b.sled.CopyFromDepot(context.Background(), d, nil, a.depotURL)
	if !errors.Is(err, api.ErrSourceNotFound) {
		t.Fatalf("client: %v, want api.ErrSourceNotFound", err)
	}
}

func TestServer_Copy_ManagedNeedsGeneration(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := newEnv(t)
	ctx := context.Background()
	_, d := a.putBlob(t, 1000)
	_, other := blob(t, 10)
	b.putConfig(t, 2, d)

	resp, body := do(t, "POST", b.sledURL+"/artifacts/"+d.String()+"/copy-from-depot",
		strings.NewReader(`{"depot_base_url":"`+a.depotURL+`"}`))
	wantError(t, resp, body, 409, "GENERATION")
	if err := b.sled.CopyFromDepot(ctx, other, gen(2), a.depotURL); !errors.Is(err, api.ErrNotInConfig) {
		t.Fatalf("copy of an artifact outside the config: %v", err)
	}
	if err := b.sled.CopyFromDepot(ctx, d, gen(2), a.depotURL); err != nil {
		t.Fatal(err)
	}
	if job := b.waitCopy(t, d); job.State != api.CopySucceeded || job.Generation == nil || *job.Generation != 2 {
		t.Fatalf("job = %+v", job)
	}
	b.checkMirrors(t, d)
}

func TestServer_Copy_InvalidDepotURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := blob(t, 10)
	for _, u := range []string{"ftp://127.0.0.1:1", "not a url", "http://", ""} {
		resp, body := do(t, "POST", e.sledURL+"/artifacts/"+d.String()+"/copy-from-depot",
			strings.NewReader(`{"depot_base_url":"`+u+`"}`))
		wantError(t, resp, body, 400, "INVALID_DEPOT_URL")
	}
	for _, body := range []string{`{"depot_base_url":`, `[]`} {
		resp, b := do(t, "POST", e.sledURL+"/artifacts/"+d.String()+"/copy-from-depot", strings.NewReader(body))
		wantError(t, resp, b, 400, "BAD_REQUEST")
	}
	resp, body := do(t, "POST", e.sledURL+"/artifacts/"+d.String()+"/copy-from-depot",
		strings.NewReader(`{"depot_base_url":"`+strings.Repeat("x", 70<<10)+`"}`))
	wantError(t, resp, body, 413, "TOO_LARGE")
	// No job was started.
	jobs, err := e.sled.Copies(context.Background())
	if err != nil || len(jobs) != 0 {
		t.Fatalf("copies = %+v, %v", jobs, err)
	}
	_, err = e.sled.Copy(context.Background(), d, 0)
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Copy of a hash without a job: %v", err)
	}
	resp, body = do(t, "GET", e.sledURL+"/copies/"+d.String(), nil)
	eb := wantError(t, resp, body, 404, "NOT_FOUND")
	if !strings.Contains(eb.Message, "copy job") {
		t.Errorf("NOT_FOUND message %q does not say what is missing", eb.Message)
	}
	resp, body = do(t, "GET", e.sledURL+"/copies/"+d.String()+"?wait=soon", nil)
	wantError(t, resp, body, 400, "BAD_REQUEST")
	if _, body := do(t, "GET", e.sledURL+"/copies", nil); strings.TrimSpace(string(body)) != `{"items":[]}` {
		t.Errorf("GET /copies = %s", body)
	}
}

// lyingPeer serves every request with body's bytes, declaring length.
func lyingPeer(t testing.TB, body []byte, length int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(length))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestServer_Copy_LyingPeer(t *testing.T) {
	t.Parallel()
	data, d := blob(t, 256<<10)
	flipped := bytes.Clone(data)
	flipped[1000] ^= 0x01
	for _, c := range []struct {
		name   string
		body   []byte
		length int
	}{
		{"wrong bytes", flipped, len(data)},
		{"short body", data[:len(data)/2], len(data)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			peer := lyingPeer(t, c.body, c.length)
			if err := e.sled.CopyFromDepot(context.Background(), d, nil, peer); err != nil {
				t.Fatal(err)
			}
			job := e.waitCopy(t, d)
			if job.State != api.CopyFailed || job.Error == "" {
				t.Fatalf("job = %+v, want failed", job)
			}
			e.checkMirrors(t) // nothing stored, no temp files
			if _, err := e.depot.HeadArtifact(context.Background(), d); !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("HEAD after a failed copy: %v", err)
			}
		})
	}
}

// holdingPeer serves the artifacts it holds, but GETs only once released
// (HEADs, the check before a copy is accepted, answer at once).
type holdingPeer struct {
	url      string
	mu       sync.Mutex
	blobs    map[string][]byte // by hex digest
	released chan struct{}
	once     sync.Once
}

func newHoldingPeer(t testing.TB) *holdingPeer {
	t.Helper()
	p := &holdingPeer{blobs: map[string][]byte{}, released: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			select {
			case <-p.released:
			case <-r.Context().Done():
				return
			}
		}
		p.mu.Lock()
		b, ok := p.blobs[strings.TrimPrefix(r.URL.Path, "/artifact/sha256/")]
		p.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+strings.TrimPrefix(r.URL.Path, "/artifact/sha256/")+`"`)
		if r.Method != http.MethodHead {
			w.Write(b)
		}
	}))
	p.url = srv.URL
	t.Cleanup(func() { p.release(); srv.Close() })
	return p
}

func (p *holdingPeer) add(t testing.TB, n int) ([]byte, api.Digest) {
	b, d := blob(t, n)
	p.mu.Lock()
	p.blobs[d.String()] = b
	p.mu.Unlock()
	return b, d
}

func (p *holdingPeer) release() { p.once.Do(func() { close(p.released) }) }

func TestServer_Copy_TooManyCopies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSledOptions(depot.SledOptions{MaxConcurrentCopies: 2, MaxQueuedCopies: -1}))
	peer := newHoldingPeer(t)
	ctx := context.Background()
	var ds []api.Digest
	for range 5 {
		_, d := peer.add(t, 10<<10)
		ds = append(ds, d)
	}
	for _, d := range ds[:2] {
		if err := e.sled.CopyFromDepot(ctx, d, nil, peer.url); err != nil {
			t.Fatal(err)
		}
	}
	// A request for a running job is absorbed by it.
	if err := e.sled.CopyFromDepot(ctx, ds[0], nil, peer.url); err != nil {
		t.Fatalf("second request for a running copy: %v", err)
	}
	// The storm: every further copy is refused at once with Retry-After.
	for _, d := range ds[2:] {
		start := time.Now()
		resp, body := do(t, "POST", e.sledURL+"/artifacts/"+d.String()+"/copy-from-depot",
			strings.NewReader(`{"depot_base_url":"`+peer.url+`"}`))
		wantError(t, resp, body, 429, "TOO_MANY_COPIES")
		if ra := resp.Header.Get("Retry-After"); ra != "5" {
			t.Errorf("Retry-After %q, want 5", ra)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("a refused copy took %v", time.Since(start))
		}
	}
	err := e.sled.CopyFromDepot(ctx, ds[4], nil, peer.url)
	var ae *client.APIError
	if !errors.Is(err, api.ErrTooManyCopies) || !errors.As(err, &ae) || ae.RetryAfter != depot.RetryAfter {
		t.Fatalf("client copy in the storm: %v", err)
	}
	st, _ := e.sled.Status(ctx)
	if st.Copies.Running != 2 || st.Copies.Rejected != 4 {
		t.Fatalf("copies = %+v, want 2 running, 4 rejected", st.Copies)
	}
	peer.release()
	for _, d := range ds[:2] {
		if job := e.waitCopy(t, d); job.State != api.CopySucceeded {
			t.Fatalf("job = %+v", job)
		}
	}
	// With room again, the refused ones go through.
	if err := e.sled.CopyFromDepot(ctx, ds[2], nil, peer.url); err != nil {
		t.Fatal(err)
	}
	e.waitCopy(t, ds[2])
	e.checkMirrors(t, ds[:3]...)
}

func TestServer_Copy_LongPollReturnsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	peer := newHoldingPeer(t)
	_, d := peer.add(t, 64<<10)
	if err := e.sled.CopyFromDepot(context.Background(), d, nil, peer.url); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		peer.release()
	}()
	start := time.Now()
	job, err := e.sled.Copy(context.Background(), d, 30*time.Second)
	took := time.Since(start)
	if err != nil || job.State != api.CopySucceeded {
		t.Fatalf("long-poll = %+v, %v", job, err)
	}
	if took < 50*time.Millisecond || took > 5*time.Second {
		t.Fatalf("long-poll took %v; want it to answer right after the job ends (~100ms)", took)
	}
	t.Logf("long-poll answered after %v", took)
}

func TestServer_Copy_LongPollEndsAtShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	peer := newHoldingPeer(t)
	_, d := peer.add(t, 1000)
	if err := e.sled.CopyFromDepot(context.Background(), d, nil, peer.url); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	start := time.Now()
	go func() {
		job, err := e.sled.Copy(context.Background(), d, time.Minute)
		if err == nil && job.State != api.CopyRunning && job.State != api.CopyQueued {
			err = fmt.Errorf("job %+v is not queued or running", job)
		}
		res <- err
	}()
	time.Sleep(100 * time.Millisecond)
	e.cancel()
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long-poll held the shutdown up")
	}
	if err := <-e.served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	e.served <- nil
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
}

// BenchmarkCopyBurst16 measures a burst of 16 copy-from-depot requests of
// 1 MiB artifacts between two daemons on loopback, from the first request
// to the last job's end: the source HEAD before each 202, the queue (4
// running, the rest waiting) and the copies themselves.
func BenchmarkCopyBurst16(b *testing.B) {
	a := newEnv(b)
	var ds []api.Digest
	for range 16 {
		_, d := a.putBlob(b, 1<<20)
		ds = append(ds, d)
	}
	b.SetBytes(16 << 20)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst := newEnv(b)
		b.StartTimer()
		var wg sync.WaitGroup
		for _, d := range ds {
			wg.Go(func() {
				if err := dst.sled.CopyFromDepot(context.Background(), d, nil, a.depotURL); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		for _, d := range ds {
			if job := dst.waitCopy(b, d); job.State != api.CopySucceeded {
				b.Fatalf("job = %+v", job)
			}
		}
	}
}
