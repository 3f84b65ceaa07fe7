package depot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/store"
)

// fakePeer serves artifacts from memory and can misbehave per digest.
type fakePeer struct {
	mu    sync.Mutex
	blobs map[store.Digest][]byte
	// lie serves these bytes instead of the real ones.
	lie map[store.Digest][]byte
	// gate, when set, holds every fetch until it is closed.
	gate chan struct{}
	// stall makes the body block until the fetch's context ends.
	stall bool
	calls int
	// statErr, when set, is what every Stat returns.
	statErr error
	stats   int
}

func newFakePeer() *fakePeer {
	return &fakePeer{blobs: map[store.Digest][]byte{}, lie: map[store.Digest][]byte{}}
}

func (p *fakePeer) add(b []byte) store.Digest {
	d := store.Digest(sha256.Sum256(b))
	p.mu.Lock()
	p.blobs[d] = b
	p.mu.Unlock()
	return d
}

func (p *fakePeer) Fetch(ctx context.Context, baseURL string, d store.Digest) (io.ReadCloser, int64, error) {
	p.mu.Lock()
	p.calls++
	gate, stall := p.gate, p.stall
	b, ok := p.blobs[d]
	if l, lying := p.lie[d]; lying {
		b, ok = l, true
	}
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	if !ok {
		return nil, 0, store.ErrNotFound
	}
	if stall {
		return io.NopCloser(io.MultiReader(bytes.NewReader(b[:len(b)/2]), blockingReader{ctx})), int64(len(b)), nil
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (p *fakePeer) Stat(ctx context.Context, baseURL string, d store.Digest) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats++
	if p.statErr != nil {
		return 0, p.statErr
	}
	b, ok := p.blobs[d]
	if !ok {
		return 0, fmt.Errorf("peer %s: %w", baseURL, store.ErrNotFound)
	}
	return int64(len(b)), nil
}

type blockingReader struct{ ctx context.Context }

func (r blockingReader) Read([]byte) (int, error) { <-r.ctx.Done(); return 0, r.ctx.Err() }

type env struct {
	st      *store.Store
	sled    *depot.Sled
	peer    *fakePeer
	mirrors []string
}

func newEnv(t testing.TB, opts depot.SledOptions) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{mirrors: []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}, peer: newFakePeer()}
	e.open(t, opts)
	return e
}

func (e *env) open(t testing.TB, opts depot.SledOptions) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(context.Background(), store.Options{Mirrors: e.mirrors, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Logger = st, log
	if opts.Peer == nil {
		opts.Peer = e.peer
	}
	sled, err := depot.NewSled(context.Background(), opts)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	e.st, e.sled = st, sled
	t.Cleanup(e.close)
}

func (e *env) close() {
	e.sled.Close()
	e.st.Close()
}

func (e *env) put(t testing.TB, b []byte, gen *uint64) error {
	t.Helper()
	_, err := e.sled.Put(context.Background(), store.Digest(sha256.Sum256(b)), gen, bytes.NewReader(b), int64(len(b)))
	return err
}

func gen(g uint64) *uint64 { return &g }

func artifact(i int) []byte { return []byte(fmt.Sprintf("artifact %d %s", i, strings.Repeat("x", i))) }

func digest(b []byte) store.Digest { return store.Digest(sha256.Sum256(b)) }

func TestSled_SetConfig_GenerationRules(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	a, b := digest(artifact(1)), digest(artifact(2))
	ctx := context.Background()
	if _, err := e.sled.Config(); !errors.Is(err, depot.ErrNoConfig) {
		t.Fatalf("unmanaged Config err = %v", err)
	}
	if err := e.sled.SetConfig(ctx, depot.Config{Generation: 5, Artifacts: []store.Digest{a, b}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  depot.Config
		want error
	}{
		{"lower", depot.Config{Generation: 4, Artifacts: []store.Digest{a, b}}, depot.ErrConfigGeneration},
		{"equal, same set in another order", depot.Config{Generation: 5, Artifacts: []store.Digest{b, a, b}}, nil},
		{"equal, different set", depot.Config{Generation: 5, Artifacts: []store.Digest{a}}, depot.ErrConfigGeneration},
		{"higher", depot.Config{Generation: 6, Artifacts: []store.Digest{a}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := e.sled.SetConfig(ctx, c.cfg); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	cfg, err := e.sled.Config()
	if err != nil || cfg.Generation != 6 || len(cfg.Artifacts) != 1 {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
}

func TestSled_Put_GenerationAndConfigChecks(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	in, out := artifact(1), artifact(2)
	if err := e.put(t, out, nil); err != nil {
		t.Fatalf("unmanaged put: %v", err)
	}
	if err := e.put(t, out, gen(1)); !errors.Is(err, depot.ErrGeneration) {
		t.Fatalf("unmanaged put with generation: %v", err)
	}
	if err := e.sled.SetConfig(context.Background(), depot.Config{Generation: 3, Artifacts: []store.Digest{digest(in)}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		g    *uint64
		want error
	}{
		{"no generation", in, nil, depot.ErrGeneration},
		{"stale generation", in, gen(2), depot.ErrGeneration},
		{"future generation", in, gen(4), depot.ErrGeneration},
		{"not in config", out, gen(3), depot.ErrNotInConfig},
		{"ok", in, gen(3), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := e.put(t, c.b, c.g); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	if err := e.sled.Delete(context.Background(), digest(in)); !errors.Is(err, depot.ErrArtifactInConfig) {
		t.Fatalf("delete of configured artifact: %v", err)
	}
}

func listed(t testing.TB, s *depot.Sled) map[store.Digest]int {
	t.Helper()
	l, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[store.Digest]int{}
	for _, i := range l {
		out[i.Digest] = i.Copies
	}
	return out
}

func stored(t testing.TB, st *store.Store) map[store.Digest]bool {
	t.Helper()
	l, _ := st.List(context.Background())
	out := map[store.Digest]bool{}
	for _, i := range l {
		out[i.Digest] = true
	}
	return out
}

func TestSled_Reconcile_RemovesExactlyTheUnconfigured(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	var all []store.Digest
	for i := range 6 {
		if err := e.put(t, artifact(i), nil); err != nil {
			t.Fatal(err)
		}
		all = append(all, digest(artifact(i)))
	}
	keep := all[:3]
	if err := e.sled.SetConfig(context.Background(), depot.Config{Generation: 1, Artifacts: keep}); err != nil {
		t.Fatal(err)
	}
	st := e.sled.Reconcile() // the background pass may have won the race; this one is ours
	got := stored(t, e.st)
	if len(got) != 3 || !got[keep[0]] || !got[keep[1]] || !got[keep[2]] {
		t.Fatalf("stored after reconcile = %v, want exactly %v", got, keep)
	}
	if st.Failed != 0 || st.Passes < 1 {
		t.Fatalf("reconcile status = %+v", st)
	}
	if l := listed(t, e.sled); len(l) != 3 || l[keep[0]] != 2 {
		t.Fatalf("list = %v", l)
	}
}

// listHook runs fn once, right after the reconciler lists the store and
// before it deletes anything: a config arriving mid-pass.
type listHook struct {
	*store.Store
	mu sync.Mutex
	fn func()
}

func (h *listHook) List(ctx context.Context) ([]store.Info, error) {
	l, err := h.Store.List(ctx)
	h.mu.Lock()
	fn := h.fn
	h.fn = nil
	h.mu.Unlock()
	if fn != nil {
		fn()
	}
	return l, err
}

func TestSled_Reconcile_ConfigArrivingMidPassWins(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(context.Background(), store.Options{Mirrors: []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ds []store.Digest
	for i := range 4 {
		b := artifact(i)
		if _, err := st.Put(context.Background(), digest(b), bytes.NewReader(b), -1); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, digest(b))
	}
	hook := &listHook{Store: st}
	sled, err := depot.NewSled(context.Background(), depot.SledOptions{Store: hook, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer sled.Close()
	// Unmanaged: the first pass deletes nothing; let it finish.
	waitFor(t, func() bool { return sled.Status().Reconciler.Passes >= 1 })

	hook.mu.Lock()
	hook.fn = func() {
		// Generation 2 wants everything back while the pass for generation
		// 1 (which wants only ds[0]) is between listing and deleting.
		if err := sled.SetConfig(context.Background(), depot.Config{Generation: 2, Artifacts: ds}); err != nil {
			t.Error(err)
		}
	}
	hook.mu.Unlock()
	if err := sled.SetConfig(context.Background(), depot.Config{Generation: 1, Artifacts: ds[:1]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return sled.Status().Reconciler.Passes >= 3 || len(stored(t, st)) < 4 })
	rs := sled.Reconcile()
	if got := stored(t, st); len(got) != 4 {
		t.Fatalf("stored = %d artifacts, want all 4 (generation 2 wants them); reconciler %+v", len(got), rs)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSled_Ledger_CorruptCopyRecoveredFromOtherMirror(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	want := depot.Config{Generation: 7, Artifacts: []store.Digest{digest(artifact(1))}}
	if err := e.sled.SetConfig(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	e.close()
	ledger0 := filepath.Join(e.mirrors[0], "meta", "artifacts-config.json")
	good, err := os.ReadFile(ledger0)
	if err != nil {
		t.Fatal(err)
	}
	// Truncate one copy, flip a digit in the other's generation: neither
	// verifies... then restore the second so one good copy is left.
	if err := os.WriteFile(ledger0, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	e.open(t, depot.SledOptions{})
	cfg, err := e.sled.Config()
	if err != nil || cfg.Generation != 7 || len(cfg.Artifacts) != 1 {
		t.Fatalf("config after restart = %+v, %v", cfg, err)
	}
	again, _ := os.ReadFile(ledger0)
	if !bytes.Equal(again, good) {
		t.Fatalf("corrupt ledger copy not rewritten: %q", again)
	}
}

func TestSled_Ledger_BitFlipIgnoredAndHighestGenerationWins(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	ctx := context.Background()
	if err := e.sled.SetConfig(ctx, depot.Config{Generation: 1}); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(filepath.Join(e.mirrors[0], "meta", "artifacts-config.json"))
	if err := e.sled.SetConfig(ctx, depot.Config{Generation: 2}); err != nil {
		t.Fatal(err)
	}
	e.close()
	// Mirror b goes back to generation 1 (a mirror that missed a write);
	// mirror a's copy of generation 2 stays. Then a bit flip on a copy of
	// generation 9 must not win.
	os.WriteFile(filepath.Join(e.mirrors[1], "meta", "artifacts-config.json"), old, 0o644)
	e.open(t, depot.SledOptions{})
	if g, _ := e.sled.Generation(ctx); g == nil || *g != 2 {
		t.Fatalf("generation = %v, want 2", g)
	}
	e.close()
	cur, _ := os.ReadFile(filepath.Join(e.mirrors[0], "meta", "artifacts-config.json"))
	forged := bytes.Replace(cur, []byte(`"generation":2`), []byte(`"generation":9`), 1)
	os.WriteFile(filepath.Join(e.mirrors[0], "meta", "artifacts-config.json"), forged, 0o644)
	e.open(t, depot.SledOptions{})
	if g, _ := e.sled.Generation(ctx); g == nil || *g != 2 {
		t.Fatalf("generation = %v, want 2 (the forged 9 fails its checksum)", g)
	}
}

func TestSled_Copy_FromPeer(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	b := bytes.Repeat([]byte("peer bytes "), 100_000)
	d := e.peer.add(b)
	ctx := context.Background()
	if err := e.sled.SetConfig(ctx, depot.Config{Generation: 1, Artifacts: []store.Digest{d}}); err != nil {
		t.Fatal(err)
	}
	if err := e.sled.CopyFromDepot(ctx, d, gen(1), "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	job, err := e.sled.WaitCopy(ctx, d, 10*time.Second)
	if err != nil || job.State != depot.CopySucceeded || job.Bytes != int64(len(b)) {
		t.Fatalf("job = %+v, %v", job, err)
	}
	if l := listed(t, e.sled); l[d] != 2 {
		t.Fatalf("list = %v", l)
	}
	if c := e.sled.Status().Copies; c.Succeeded != 1 || c.Running != 0 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestSled_Copy_LyingPeerStoresNothing(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	b := artifact(50)
	d := e.peer.add(b)
	e.peer.lie[d] = append([]byte("X"), b[1:]...)
	ctx := context.Background()
	if err := e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	job, _ := e.sled.WaitCopy(ctx, d, 10*time.Second)
	if job.State != depot.CopyFailed || !strings.Contains(job.Error, "sha256") {
		t.Fatalf("job = %+v, want failed with a hash error", job)
	}
	if len(stored(t, e.st)) != 0 || len(tempFiles(t, e.mirrors)) != 0 {
		t.Fatal("a lying peer left something behind")
	}
	// Short bytes are refused too.
	e.peer.lie[d] = b[:len(b)-1]
	e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1")
	if job, _ := e.sled.WaitCopy(ctx, d, 10*time.Second); job.State != depot.CopyFailed {
		t.Fatalf("short copy = %+v", job)
	}
}

func tempFiles(t testing.TB, mirrors []string) []string {
	t.Helper()
	var out []string
	for _, m := range mirrors {
		filepath.WalkDir(filepath.Join(m, "tmp"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func TestSled_Copy_QueueCoalesceAndLongPoll(t *testing.T) {
	e := newEnv(t, depot.SledOptions{MaxConcurrentCopies: 2, MaxQueuedCopies: 1})
	e.peer.gate = make(chan struct{})
	ctx := context.Background()
	var ds []store.Digest
	for i := range 4 {
		ds = append(ds, e.peer.add(artifact(i)))
	}
	for _, d := range ds[:3] {
		if err := e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	// The same hash again joins its job; with 2 running and 1 waiting, a
	// fourth hash is refused.
	if err := e.sled.CopyFromDepot(ctx, ds[0], nil, "http://127.0.0.1:1"); err != nil {
		t.Fatalf("coalesced copy: %v", err)
	}
	if err := e.sled.CopyFromDepot(ctx, ds[3], nil, "http://127.0.0.1:1"); !errors.Is(err, depot.ErrTooManyCopies) {
		t.Fatalf("fourth copy: %v, want ErrTooManyCopies", err)
	}
	if n := len(e.sled.Copies()); n != 3 {
		t.Fatalf("%d jobs, want 3", n)
	}
	waitFor(t, func() bool { c := e.sled.Status().Copies; return c.Running == 2 && c.Queued == 1 })
	if c := e.sled.Status().Copies; c.Limit != 2 || c.QueueLimit != 1 || c.Rejected != 1 {
		t.Fatalf("counts = %+v", c)
	}

	type result struct {
		job  depot.CopyJob
		took time.Duration
	}
	done := make(chan result)
	go func() {
		start := time.Now()
		job, _ := e.sled.WaitCopy(ctx, ds[2], 30*time.Second)
		done <- result{job, time.Since(start)}
	}()
	time.Sleep(50 * time.Millisecond)
	close(e.peer.gate)
	r := <-done
	if r.job.State != depot.CopySucceeded || r.took > 5*time.Second {
		t.Fatalf("long-poll returned %+v after %s; want success as soon as the queued job ends", r.job, r.took)
	}
	for _, d := range ds[:3] {
		if j, _ := e.sled.WaitCopy(ctx, d, 30*time.Second); j.State != depot.CopySucceeded {
			t.Fatalf("job %s = %+v", d, j)
		}
	}
	if e.peer.calls != 3 {
		t.Fatalf("peer fetched %d times, want 3 (coalesced)", e.peer.calls)
	}
	if got := len(stored(t, e.st)); got != 3 {
		t.Fatalf("%d artifacts stored, want 3", got)
	}
}

// TestSled_Copy_Burst: a burst of 16 copies, as Nexus sends (8 at a time,
// twice), is accepted whole with the default limits and every artifact
// lands.
func TestSled_Copy_Burst(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	e.peer.gate = make(chan struct{})
	ctx := context.Background()
	var ds []store.Digest
	for i := range 16 {
		ds = append(ds, e.peer.add(artifact(i)))
	}
	errs := make(chan error, len(ds))
	for _, d := range ds {
		go func() { errs <- e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1") }()
	}
	for range ds {
		if err := <-errs; err != nil {
			t.Fatalf("copy refused: %v", err)
		}
	}
	close(e.peer.gate)
	for _, d := range ds {
		if j, _ := e.sled.WaitCopy(ctx, d, 30*time.Second); j.State != depot.CopySucceeded {
			t.Fatalf("job %s = %+v", d, j)
		}
	}
	if got := len(stored(t, e.st)); got != 16 {
		t.Fatalf("%d artifacts stored, want 16", got)
	}
}

// TestSled_Copy_SourceCheckedFirst: a source without the artifact, or one
// that cannot be asked, is refused before any job exists.
func TestSled_Copy_SourceCheckedFirst(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	ctx := context.Background()
	missing := store.Digest(sha256.Sum256([]byte("nobody holds this")))
	if err := e.sled.CopyFromDepot(ctx, missing, nil, "http://127.0.0.1:1"); !errors.Is(err, depot.ErrSourceNotFound) {
		t.Fatalf("absent at the source: %v, want ErrSourceNotFound", err)
	}
	d := e.peer.add(artifact(1))
	e.peer.statErr = errors.New("connection refused by 10.0.0.9 <secret>")
	err := e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1")
	if !errors.Is(err, depot.ErrSourceUnavailable) {
		t.Fatalf("unreachable source: %v, want ErrSourceUnavailable", err)
	}
	if strings.Contains(err.Error(), "<secret>") {
		t.Fatalf("the source's error text reached the caller: %v", err)
	}
	if n := len(e.sled.Copies()); n != 0 || e.peer.calls != 0 {
		t.Fatalf("%d jobs, %d fetches after refused copies", n, e.peer.calls)
	}
	e.peer.statErr = nil
	if err := e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if j, _ := e.sled.WaitCopy(ctx, d, 30*time.Second); j.State != depot.CopySucceeded {
		t.Fatalf("job = %+v", j)
	}
}

// TestSled_Close_FailsQueuedCopies: jobs still waiting for a slot end as
// failed when the sled closes, and Close does not wait for the queue.
func TestSled_Close_FailsQueuedCopies(t *testing.T) {
	e := newEnv(t, depot.SledOptions{MaxConcurrentCopies: 1})
	e.peer.gate = make(chan struct{})
	ctx := context.Background()
	var ds []store.Digest
	for i := range 3 {
		d := e.peer.add(artifact(i))
		ds = append(ds, d)
		if err := e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return e.sled.Status().Copies.Queued == 2 })
	done := make(chan struct{})
	go func() { e.sled.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for queued copies")
	}
	for _, j := range e.sled.Copies() {
		if j.State != depot.CopyFailed {
			t.Fatalf("job after close = %+v", j)
		}
	}
}

func TestSled_Copy_StalledPeerFails(t *testing.T) {
	e := newEnv(t, depot.SledOptions{CopyStallTimeout: 200 * time.Millisecond})
	e.peer.stall = true
	d := e.peer.add(bytes.Repeat([]byte("s"), 3<<20))
	ctx := context.Background()
	if err := e.sled.CopyFromDepot(ctx, d, nil, "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	job, _ := e.sled.WaitCopy(ctx, d, 10*time.Second)
	if job.State != depot.CopyFailed || !strings.Contains(job.Error, "no bytes") {
		t.Fatalf("job = %+v, want failed as stalled", job)
	}
	if len(tempFiles(t, e.mirrors)) != 0 || len(stored(t, e.st)) != 0 {
		t.Fatal("stalled copy left something behind")
	}
}

func TestSled_Copy_BadSourceRefusedBeforeAnyJob(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	d := e.peer.add(artifact(1))
	for _, u := range []string{"", "ftp://x", "file:///etc/passwd", "http://", "::not a url", "127.0.0.1:12348"} {
		if err := e.sled.CopyFromDepot(context.Background(), d, nil, u); !errors.Is(err, depot.ErrInvalidSource) {
			t.Errorf("%q: err = %v, want ErrInvalidSource", u, err)
		}
	}
	if n := len(e.sled.Copies()); n != 0 {
		t.Fatalf("%d jobs started", n)
	}
}

func TestSled_Close_CancelsRunningCopies(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	e.peer.stall = true
	d := e.peer.add(bytes.Repeat([]byte("c"), 3<<20))
	if err := e.sled.CopyFromDepot(context.Background(), d, nil, "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return e.sled.Copies()[0].Bytes > 0 })
	done := make(chan struct{})
	go func() { e.sled.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the running copy")
	}
	if j := e.sled.Copies()[0]; j.State != depot.CopyFailed {
		t.Fatalf("job after close = %+v", j)
	}
	if f := tempFiles(t, e.mirrors); len(f) != 0 {
		t.Fatalf("temp files left: %v", f)
	}
}
