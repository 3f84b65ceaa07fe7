package depot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/store"
	"depot/tuf/tuftest"
)

// rack is a coordinator and some sleds, all in process: each sled is a
// real Sled over a real store, reached through LocalSled; peers copy
// through rackPeer, which maps depot URLs to sleds.
type rack struct {
	t     testing.TB
	coord *coordEnv
	peer  *rackPeer
	sleds map[string]*env // by depot URL, the coordinator's own included
	ids   map[string]string
	rep   *depot.Replicator
	mu    sync.Mutex
	down  map[string]bool // control URLs whose every call fails
}

// flakySled fails every call while its sled is down.
type flakySled struct {
	depot.SledClient
	r   *rack
	url string
}

var errDown = errors.New("sled unreachable")

func (f flakySled) isDown() bool {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	return f.r.down[f.url]
}

func (f flakySled) Info(ctx context.Context) (depot.SledInfo, error) {
	if f.isDown() {
		return depot.SledInfo{}, errDown
	}
	return f.SledClient.Info(ctx)
}

func (r *rack) setDown(url string, down bool) {
	r.mu.Lock()
	r.down[url] = down
	r.mu.Unlock()
}

type rackPeer struct {
	mu      sync.Mutex
	byURL   map[string]*store.Store
	corrupt map[string]bool // depot URLs that serve flipped bytes
}

func (p *rackPeer) Fetch(ctx context.Context, baseURL string, d store.Digest) (io.ReadCloser, int64, error) {
	p.mu.Lock()
	st, bad := p.byURL[baseURL], p.corrupt[baseURL]
	p.mu.Unlock()
	if st == nil {
		return nil, 0, fmt.Errorf("no sled at %s", baseURL)
	}
	b, err := st.Open(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	if !bad {
		return b.File, b.Size, nil
	}
	data, _ := io.ReadAll(b.File)
	b.File.Close()
	data[0] ^= 0xff
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

func (p *rackPeer) Stat(ctx context.Context, baseURL string, d store.Digest) (int64, error) {
	p.mu.Lock()
	st := p.byURL[baseURL]
	p.mu.Unlock()
	if st == nil {
		return 0, fmt.Errorf("no sled at %s", baseURL)
	}
	info, err := st.Stat(ctx, d)
	return info.Size, err
}

func newRack(t testing.TB, remotes int, min int) *rack {
	t.Helper()
	r := &rack{t: t, peer: &rackPeer{byURL: map[string]*store.Store{}, corrupt: map[string]bool{}}, sleds: map[string]*env{}, ids: map[string]string{}, down: map[string]bool{}}
	r.coord = &coordEnv{env: newEnv(t, depot.SledOptions{HoldReconciler: true, Peer: r.peer}), dir: t.TempDir()}
	r.coord.openCoord(t)
	r.sleds["http://local:1"] = r.coord.env
	r.peer.byURL["http://local:1"] = r.coord.st
	for i := range remotes {
		url := fmt.Sprintf("http://sled-%d:1", i)
		e := newEnv(t, depot.SledOptions{Peer: r.peer})
		r.sleds[url] = e
		r.peer.byURL[url] = e.st
		rec, err := r.coord.cat.PutSled(t.Context(), depot.SledRecord{ID: fmt.Sprintf("sled-%d", i), ControlURL: url, DepotURL: url}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.ids[url] = rec.ID
	}
	r.rep = depot.NewReplicator(r.coord.coord, depot.ReplicationOptions{
		MinReplication: min,
		Local:          depot.LocalSled{Sled: r.coord.sled, DepotURL: "http://local:1"},
		LocalStore:     r.coord.st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			return flakySled{depot.LocalSled{Sled: r.sleds[rec.ControlURL].sled, DepotURL: rec.DepotURL}, r, rec.ControlURL}
		},
		Logger: slog.New(slog.DiscardHandler),
		Seed:   1,
	})
	return r
}

// converge runs activations until one says converged, at most n.
func (r *rack) converge(n int) []depot.Activation {
	r.t.Helper()
	var acts []depot.Activation
	for range n {
		a := r.rep.RunOnce(context.Background())
		acts = append(acts, a)
		if a.Converged {
			return acts
		}
	}
	r.t.Fatalf("not converged after %d activations: last %+v", n, acts[len(acts)-1])
	return nil
}

func (r *rack) upload(t testing.TB, version string, seed byte) depot.UploadResult {
	t.Helper()
	zip, root, _ := repoArchive(t, version, seed)
	if _, _, err := r.coord.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
		t.Fatal(err)
	}
	res, err := r.coord.upload(t, zip)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestReplicator_UploadReachesEverySled(t *testing.T) {
	r := newRack(t, 3, 2)
	res := r.upload(t, "1.0.0", 1)
	if p := r.rep.Progress(res.Repo); p.State != depot.RepoReplicating && p.InService != 0 {
		t.Fatalf("before replication: %+v", p)
	}
	acts := r.converge(5)
	for url, e := range r.sleds {
		l := listed(t, e.sled)
		for _, a := range res.Repo.Artifacts {
			if l[a.Hash] != 2 {
				t.Fatalf("sled %s holds %s with %d copies, want 2", url, a.Hash, l[a.Hash])
			}
		}
	}
	p := r.rep.Progress(res.Repo)
	if p.State != depot.RepoComplete || p.InService != 4 {
		t.Fatalf("progress = %+v, want complete on 4 sleds", p)
	}
	// Requests: per artifact per remote sled, one copy (and no PUT, the
	// local sled already holds everything, min 2 is met by copies).
	st := r.rep.Status(t.Context())
	copies := st.Lifetime[depot.OpCopy].OK + st.Lifetime[depot.OpPut].OK
	if want := int64(len(res.Repo.Artifacts) * 3); copies != want {
		t.Fatalf("%d puts+copies, want %d (activations %d)", copies, want, len(acts))
	}
	if st.Lifetime[depot.OpCopy].Err+st.Lifetime[depot.OpPut].Err != 0 {
		t.Fatalf("errors: %+v", st.Recent)
	}
}

func TestReplicator_DeleteRepoLeavesEverySled(t *testing.T) {
	r := newRack(t, 2, 1)
	res := r.upload(t, "2.0.0", 2)
	r.converge(5)
	if _, err := r.coord.coord.DeleteRepo(context.Background(), "2.0.0", nil); err != nil {
		t.Fatal(err)
	}
	r.converge(3)
	for url, e := range r.sleds {
		waitFor(t, func() bool { return len(stored(t, e.st)) == 0 })
		if cfg, _ := e.sled.Config(); cfg.Generation != 2 {
			t.Fatalf("sled %s at generation %d", url, cfg.Generation)
		}
	}
	_ = res
}

func TestReplicator_StaleCoordinatorCannotDelete(t *testing.T) {
	r := newRack(t, 1, 1)
	res := r.upload(t, "3.0.0", 3)
	r.converge(5)
	// Another coordinator of the same catalog moved sled-0 to generation
	// 10 with the same set.
	remote := r.sleds["http://sled-0:1"]
	var hashes []store.Digest
	for _, a := range res.Repo.Artifacts {
		hashes = append(hashes, a.Hash)
	}
	id := r.coord.cat.ID()
	if err := remote.sled.SetConfig(context.Background(), depot.Config{CatalogID: id, Generation: 10, Artifacts: hashes}); err != nil {
		t.Fatal(err)
	}
	// This (stale) coordinator now deletes the repository: generation 2.
	if _, err := r.coord.coord.DeleteRepo(context.Background(), "3.0.0", nil); err != nil {
		t.Fatal(err)
	}
	act := r.rep.RunOnce(context.Background())
	if !strings.Contains(act.Error, "another coordinator is ahead") {
		t.Fatalf("activation error = %q", act.Error)
	}
	remote.sled.Reconcile()
	if got := stored(t, remote.st); len(got) != len(hashes) {
		t.Fatalf("sled-0 holds %d artifacts after a stale delete, want %d", len(got), len(hashes))
	}
	if g, _ := remote.sled.Generation(context.Background()); *g != 10 {
		t.Fatalf("sled-0 generation = %d", *g)
	}
}

func TestReplicator_CorruptPeerIsReportedAndRackConverges(t *testing.T) {
	r := newRack(t, 3, 1)
	// Twelve artifacts: with two holders to pick from for each of 24
	// copies, the planner all but surely picks the corrupt one sometimes
	// (and deterministically so, for the fixed seed).
	b := tuftest.NewBuilder(t)
	var list []tuftest.Artifact
	for i := range 12 {
		name := fmt.Sprintf("a%d.bin", i)
		b.AddTarget(name, bytes.Repeat([]byte{byte(i), 'c'}, 1000+i))
		list = append(list, tuftest.Artifact{Name: name, Version: "4.0.0", Kind: "file", Target: name})
	}
	b.SetManifest("4.0.0", list)
	if _, _, err := r.coord.coord.AddTrustRoot(t.Context(), b.RootJSON(), "test", nil); err != nil {
		t.Fatal(err)
	}
	res, err := r.coord.upload(t, b.Archive(tuftest.Zip))
	if err != nil {
		t.Fatal(err)
	}
	// First only sled-0 is reachable and gets everything; then it starts
	// serving flipped bytes while the others come back.
	r.setDown("http://sled-1:1", true)
	r.setDown("http://sled-2:1", true)
	r.rep.RunOnce(context.Background())
	r.peer.corrupt["http://sled-0:1"] = true
	r.setDown("http://sled-1:1", false)
	r.setDown("http://sled-2:1", false)
	r.converge(20)
	for url, e := range r.sleds {
		l := listed(t, e.sled)
		for _, a := range res.Repo.Artifacts {
			if l[a.Hash] == 0 {
				t.Fatalf("sled %s lacks %s", url, a.Hash)
			}
			b, err := e.st.Open(context.Background(), a.Hash)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(b.File)
			b.File.Close()
			if digest(data) != a.Hash {
				t.Fatalf("sled %s stored corrupt bytes", url)
			}
		}
	}
	// The copies sled-0 served failed, and the ring buffer says why.
	reported := 0
	for _, rec := range r.rep.Status(t.Context()).Recent {
		if rec.Op == depot.OpCopy && rec.Source == "sled-0" {
			if !strings.Contains(rec.Error, "sha256") {
				t.Fatalf("copy from the corrupt peer: %+v, want a sha256 error", rec)
			}
			reported++
		}
	}
	if reported == 0 {
		t.Fatal("sled-0 was never chosen as a source; the test proved nothing (change the seed)")
	}
}

func TestReplicator_ExpungedSledIsNotContacted(t *testing.T) {
	r := newRack(t, 2, 1)
	if _, err := r.coord.cat.ExpungeSled(t.Context(), "sled-1", nil); err != nil {
		t.Fatal(err)
	}
	r.upload(t, "5.0.0", 5)
	r.converge(5)
	if got := stored(t, r.sleds["http://sled-1:1"].st); len(got) != 0 {
		t.Fatalf("expunged sled got %d artifacts", len(got))
	}
	for _, rec := range r.rep.Status(t.Context()).Recent {
		if rec.Sled == "sled-1" {
			t.Fatalf("expunged sled contacted: %+v", rec)
		}
	}
	if _, err := r.coord.cat.PutSled(t.Context(), depot.SledRecord{ID: "sled-1", ControlURL: "http://sled-1:1"}, nil); !errors.Is(err, depot.ErrInvalidSled) {
		t.Fatalf("re-adding an expunged sled: %v", err)
	}
}

func TestReplicator_LongPollWakesOnActivation(t *testing.T) {
	r := newRack(t, 1, 1)
	ch := r.coord.coord.Changes()
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.rep.RunOnce(context.Background())
	}()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled")
	}
	_ = filepath.Join
}

// hungSled never answers until its caller gives up.
type hungSled struct{ depot.SledClient }

func (hungSled) Info(ctx context.Context) (depot.SledInfo, error) {
	<-ctx.Done()
	return depot.SledInfo{}, ctx.Err()
}

func TestReplicator_HungSledDoesNotStallActivation(t *testing.T) {
	r := newRack(t, 1, 1)
	rep := depot.NewReplicator(r.coord.coord, depot.ReplicationOptions{
		Local:       depot.LocalSled{Sled: r.coord.sled, DepotURL: "http://local:1"},
		LocalStore:  r.coord.st,
		ClientFor:   func(depot.SledRecord) depot.SledClient { return hungSled{} },
		CallTimeout: 100 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
	})
	done := make(chan depot.Activation, 1)
	go func() { done <- rep.RunOnce(context.Background()) }()
	select {
	case a := <-done:
		if a.Converged {
			t.Fatalf("activation with an unreachable sled says converged: %+v", a)
		}
		st := rep.Status(t.Context())
		var hung *depot.SledState
		for i := range st.Sleds {
			if st.Sleds[i].ID == "sled-0" {
				hung = &st.Sleds[i]
			}
		}
		if hung == nil || !strings.Contains(hung.LastError, "deadline") {
			t.Fatalf("hung sled's state = %+v", hung)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an unreachable sled stalled the activation")
	}
}
