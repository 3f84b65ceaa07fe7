package depot_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/depot/etcdlocal"
	"depot/store"
)

// The catalog conformance suite: every test here runs against the bbolt
// catalog and against a real 3-member etcd cluster (embedded members, on
// loopback), each test under its own key prefix.

var (
	etcdOnce    sync.Once
	etcdCluster *etcdlocal.Cluster
	etcdErr     error
	etcdDir     string
	prefixSeq   int
	prefixMu    sync.Mutex
)

// sharedEtcd starts the package's etcd cluster on first use.
func sharedEtcd(t testing.TB) *etcdlocal.Cluster {
	t.Helper()
	etcdOnce.Do(func() {
		etcdDir, etcdErr = os.MkdirTemp("", "depot-etcd-")
		if etcdErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		etcdCluster, etcdErr = etcdlocal.Start(ctx, etcdDir, 3, etcdlocal.Options{NoFsync: true})
	})
	if etcdErr != nil {
		t.Fatalf("start etcd: %v", etcdErr)
	}
	return etcdCluster
}

func stopSharedEtcd() {
	if etcdCluster != nil {
		etcdCluster.Close()
	}
	if etcdDir != "" {
		os.RemoveAll(etcdDir)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopSharedEtcd()
	os.Exit(code)
}

// newPrefix is a key prefix no other test uses.
func newPrefix(t testing.TB) string {
	prefixMu.Lock()
	defer prefixMu.Unlock()
	prefixSeq++
	return fmt.Sprintf("/test/%s/%d/", t.Name(), prefixSeq)
}

func openEtcdCatalog(t testing.TB, prefix string) *depot.Catalog {
	t.Helper()
	c := sharedEtcd(t)
	cat, err := depot.OpenEtcdCatalog(t.Context(), depot.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

// catalogBackend opens catalogs of one kind. pair returns two handles on
// one catalog: two coordinators on etcd; for bbolt, which one process
// holds, the same handle twice.
type catalogBackend struct {
	name string
	open func(t testing.TB) *depot.Catalog
	pair func(t testing.TB) (*depot.Catalog, *depot.Catalog)
}

func catalogBackends() []catalogBackend {
	return []catalogBackend{
		{
			name: "bbolt",
			open: openCatalog,
			pair: func(t testing.TB) (*depot.Catalog, *depot.Catalog) { c := openCatalog(t); return c, c },
		},
		{
			name: "etcd",
			open: func(t testing.TB) *depot.Catalog { return openEtcdCatalog(t, newPrefix(t)) },
			pair: func(t testing.TB) (*depot.Catalog, *depot.Catalog) {
				p := newPrefix(t)
				return openEtcdCatalog(t, p), openEtcdCatalog(t, p)
			},
		},
	}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, b catalogBackend)) {
	for _, b := range catalogBackends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

func digestOf(s string) store.Digest { return store.Digest(sha256.Sum256([]byte(s))) }

func testRepo(version string, artifacts ...string) depot.Repo {
	r := depot.Repo{Hash: digestOf("archive " + version), SystemVersion: version, FileName: version + ".zip",
		TimeCreated: time.Now().UTC()}
	for _, a := range artifacts {
		r.Artifacts = append(r.Artifacts, depot.RepoArtifact{Name: a, Version: "1.0.0", Kind: "zone", Hash: digestOf(a), Size: int64(len(a))})
	}
	return r
}

func TestCatalogConformance_Identity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b catalogBackend) {
		a1, a2 := b.pair(t)
		if !depot.ValidCatalogID(a1.ID()) || a1.ID() != a2.ID() {
			t.Fatalf("ids %q and %q of one catalog", a1.ID(), a2.ID())
		}
		if other := b.open(t); other.ID() == a1.ID() {
			t.Fatal("two catalogs share an id")
		}
	})
}

func TestCatalogConformance_Repos(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b catalogBackend) {
		cat := b.open(t)
		if w, err := cat.Wanted(t.Context()); err != nil || w.Generation != 0 || len(w.Artifacts) != 0 {
			t.Fatalf("empty catalog wanted = %+v, %v", w, err)
		}
		r1 := testRepo("1.0.0", "a", "b")
		if _, ins, gen, err := cat.InsertRepo(t.Context(), r1, "", nil); err != nil || !ins || gen != 1 {
			t.Fatalf("insert = %v %d %v", ins, gen, err)
		}
		if _, ins, gen, err := cat.InsertRepo(t.Context(), r1, "", nil); err != nil || ins || gen != 1 {
			t.Fatalf("insert again = %v %d %v", ins, gen, err)
		}
		clash := testRepo("1.0.0", "c")
		clash.Hash = digestOf("another archive")
		if _, _, _, err := cat.InsertRepo(t.Context(), clash, "", nil); !errors.Is(err, depot.ErrRepoConflict) {
			t.Fatalf("same version, other archive: %v", err)
		}
		// Same artifacts again: the wanted set does not grow, nor the generation.
		if _, ins, gen, err := cat.InsertRepo(t.Context(), testRepo("1.0.1", "a"), "", nil); err != nil || !ins || gen != 1 {
			t.Fatalf("insert of known artifacts = %v %d %v", ins, gen, err)
		}
		if _, ins, gen, err := cat.InsertRepo(t.Context(), testRepo("2.0.0", "c"), "", nil); err != nil || !ins || gen != 2 {
			t.Fatalf("insert 2.0.0 = %v %d %v", ins, gen, err)
		}
		w, err := cat.Wanted(t.Context())
		if err != nil || w.Generation != 2 || len(w.Artifacts) != 3 {
			t.Fatalf("wanted = %+v, %v", w, err)
		}
		repos, err := cat.Repos(t.Context())
		if err != nil || len(repos) != 3 || repos[0].SystemVersion != "1.0.0" {
			t.Fatalf("repos = %+v, %v", repos, err)
		}
		if r, err := cat.RepoByHash(t.Context(), r1.Hash); err != nil || r.SystemVersion != "1.0.0" {
			t.Fatalf("by hash = %+v, %v", r, err)
		}
		// 1.0.1 holds only what 1.0.0 holds too: its removal wants nothing less.
		if _, gen, err := cat.DeleteRepo(t.Context(), "1.0.1", nil); err != nil || gen != 2 {
			t.Fatalf("delete 1.0.1 = %d, %v", gen, err)
		}
		if _, gen, err := cat.DeleteRepo(t.Context(), "1.0.0", nil); err != nil || gen != 3 {
			t.Fatalf("delete 1.0.0 = %d, %v", gen, err)
		}
		if _, _, err := cat.DeleteRepo(t.Context(), "1.0.0", nil); !errors.Is(err, depot.ErrRepoNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if _, err := cat.Repo(t.Context(), "1.0.0"); !errors.Is(err, depot.ErrRepoNotFound) {
			t.Fatalf("get deleted: %v", err)
		}
		if w, _ := cat.Wanted(t.Context()); w.Generation != 3 || len(w.Artifacts) != 1 {
			t.Fatalf("wanted after deletes = %+v", w)
		}
	})
}

func TestCatalogConformance_TrustRootsSledsTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b catalogBackend) {
		cat := b.open(t)
		doc := []byte(`{"signed":{"_type":"root"},"signatures":[]}`)
		r, created, err := cat.AddTrustRoot(t.Context(), doc, "api", nil)
		if err != nil || !created {
			t.Fatalf("add = %v, %v", created, err)
		}
		if again, created, err := cat.AddTrustRoot(t.Context(), doc, "api", nil); err != nil || created || again.ID != r.ID {
			t.Fatalf("add again = %+v %v %v", again, created, err)
		}
		if got, err := cat.TrustRoot(t.Context(), r.ID); err != nil || string(got.Root) != string(doc) {
			t.Fatalf("get = %+v, %v", got, err)
		}
		if err := cat.DeleteTrustRoot(t.Context(), r.ID, nil); err != nil {
			t.Fatal(err)
		}
		if err := cat.DeleteTrustRoot(t.Context(), r.ID, nil); !errors.Is(err, depot.ErrTrustRootNotFound) {
			t.Fatalf("delete twice: %v", err)
		}

		if _, err := cat.PutSled(t.Context(), depot.SledRecord{ID: "s1", ControlURL: "http://127.0.0.1:1"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := cat.ExpungeSled(t.Context(), "s1", nil); err != nil {
			t.Fatal(err)
		}
		if s, err := cat.Sled(t.Context(), "s1"); err != nil || s.State != depot.SledExpunged {
			t.Fatalf("sled = %+v, %v", s, err)
		}
		if _, err := cat.PutSled(t.Context(), depot.SledRecord{ID: "s1", ControlURL: "http://127.0.0.1:1", State: depot.SledInService}, nil); err == nil {
			t.Fatal("an expunged sled came back")
		}

		if has, err := cat.HasTokens(t.Context()); err != nil || has {
			t.Fatalf("has tokens = %v, %v", has, err)
		}
		secret, tok, err := cat.CreateToken(t.Context(), "ci", depot.RoleOperator, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok, err := cat.TokenByHash(t.Context(), depot.HashToken(secret)); err != nil || !ok || got.Name != tok.Name {
			t.Fatalf("by hash = %+v %v %v", got, ok, err)
		}
		if _, _, err := cat.CreateToken(t.Context(), "ci", depot.RoleAdmin, nil, nil); err == nil {
			t.Fatal("a second token of one name")
		}
		if err := cat.RevokeToken(t.Context(), "ci", nil); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := cat.TokenByHash(t.Context(), depot.HashToken(secret)); ok {
			t.Fatal("a revoked token still authenticates")
		}
	})
}

func TestCatalogConformance_SagasPruned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b catalogBackend) {
		cat := b.open(t)
		const n = 260 // over the 256 finished sagas kept
		start := time.Now()
		for i := range n {
			s := depot.Saga{ID: fmt.Sprintf("s%03d", i), Step: depot.StepSpool, Started: start.Add(time.Duration(i) * time.Second)}
			if err := cat.BeginSaga(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			if err := cat.UpdateSaga(t.Context(), s.ID, func(s *depot.Saga) { s.Step = depot.StepDone }); err != nil {
				t.Fatal(err)
			}
		}
		if err := cat.BeginSaga(t.Context(), depot.Saga{ID: "live", Step: depot.StepStage, Started: start.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		sagas, err := cat.Sagas(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(sagas) != 257 || sagas[0].ID != "s004" || sagas[len(sagas)-1].ID != "live" {
			t.Fatalf("%d sagas kept, first %s", len(sagas), sagas[0].ID)
		}
	})
}

// TestCatalogConformance_Audit: records chain across pages, and a
// long-poll on one handle wakes at a record appended through the other.
func TestCatalogConformance_Audit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b catalogBackend) {
		a, other := b.pair(t)
		for i := range 5 {
			e := &depot.AuditEntry{Actor: "token:x", Action: "test.append", Target: fmt.Sprint(i), Status: 200}
			if seq, err := a.AppendAudit(t.Context(), e); err != nil || seq != uint64(i+1) {
				t.Fatalf("append %d = %d, %v", i, seq, err)
			}
		}
		page, head, err := a.Audit(t.Context(), 2, 2)
		if err != nil || head != 5 || len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
			t.Fatalf("page = %+v head %d %v", page, head, err)
		}
		verifyAll(t, a)

		changes := other.AuditChanges()
		if _, err := a.AppendAudit(t.Context(), &depot.AuditEntry{Action: "test.wake", Status: 200}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			t.Fatal("a record appended through one handle woke no long-poll on the other")
		}
		if _, head, _ := other.Audit(t.Context(), 0, 1); head != 6 {
			t.Fatalf("other handle's head = %d", head)
		}
	})
}

// TestCatalogConformance_Concurrent: two coordinators uploading different
// repositories at once both succeed with distinct generations; the same
// repository on both → one inserted; a prune racing uploads loses
// nothing; the audit chain stays gapless.
func TestCatalogConformance_Concurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b catalogBackend) {
		a, c2 := b.pair(t)
		if _, _, _, err := a.InsertRepo(t.Context(), testRepo("0.0.1", "old"), "", nil); err != nil {
			t.Fatal(err)
		}
		const per = 6
		var wg sync.WaitGroup
		gens := make(chan uint64, 2*per)
		errs := make(chan error, 4*per)
		for h, cat := range []*depot.Catalog{a, c2} {
			wg.Go(func() {
				for i := range per {
					v := fmt.Sprintf("%d.%d.0", h+1, i)
					_, ins, gen, err := cat.InsertRepo(t.Context(), testRepo(v, "art-"+v), "", &depot.AuditEntry{Action: "repo.upload", Status: 200})
					if err != nil || !ins {
						errs <- fmt.Errorf("insert %s: %v %v", v, ins, err)
						continue
					}
					gens <- gen
				}
			})
		}
		inserted := make(chan bool, 2)
		for _, cat := range []*depot.Catalog{a, c2} {
			wg.Go(func() {
				_, ins, _, err := cat.InsertRepo(t.Context(), testRepo("9.9.9", "same"), "", nil)
				if err != nil {
					errs <- err
				}
				inserted <- ins
			})
		}
		wg.Go(func() {
			if _, _, err := c2.DeleteRepo(t.Context(), "0.0.1", &depot.AuditEntry{Action: "repo.delete", Status: 200}); err != nil {
				errs <- err
			}
		})
		wg.Wait()
		close(gens)
		close(errs)
		close(inserted)
		for err := range errs {
			t.Error(err)
		}
		seen := map[uint64]bool{}
		for g := range gens {
			if seen[g] {
				t.Errorf("generation %d given to two inserts", g)
			}
			seen[g] = true
		}
		n := 0
		for ins := range inserted {
			if ins {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the same repository was inserted %d times", n)
		}
		repos, err := a.Repos(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(repos) != 2*per+1 {
			t.Errorf("%d repositories recorded, want %d", len(repos), 2*per+1)
		}
		for _, r := range repos {
			if r.SystemVersion == "0.0.1" {
				t.Error("the pruned repository is back")
			}
		}
		// 1 initial insert, 12 inserts, 1 same-repo insert, 1 prune.
		if w, _ := a.Wanted(t.Context()); w.Generation != 2*per+3 || len(w.Artifacts) != 2*per+1 {
			t.Errorf("wanted = generation %d, %d artifacts", w.Generation, len(w.Artifacts))
		}
		recs := verifyAll(t, a)
		if len(recs) != 2*per+1 {
			t.Errorf("%d audit records, want %d", len(recs), 2*per+1)
		}
	})
}

// TestCatalog_Etcd_Reopen: what one coordinator wrote, a coordinator
// opened later reads.
func TestCatalog_Etcd_Reopen(t *testing.T) {
	p := newPrefix(t)
	a := openEtcdCatalog(t, p)
	if _, _, _, err := a.InsertRepo(t.Context(), testRepo("1.0.0", "x"), "", nil); err != nil {
		t.Fatal(err)
	}
	id := a.ID()
	a.Close()
	b := openEtcdCatalog(t, p)
	if b.ID() != id {
		t.Fatalf("id %s became %s", id, b.ID())
	}
	if w, err := b.Wanted(t.Context()); err != nil || w.Generation != 1 {
		t.Fatalf("wanted = %+v, %v", w, err)
	}
}

// TestCatalog_Etcd_TooLarge: a record over etcd's request limit is refused
// as too large (not as an unavailable catalog) and changes nothing.
func TestCatalog_Etcd_TooLarge(t *testing.T) {
	cat := openEtcdCatalog(t, newPrefix(t))
	var names []string
	for i := range 12000 {
		names = append(names, fmt.Sprintf("artifact-with-a-long-name-%06d", i))
	}
	_, _, _, err := cat.InsertRepo(t.Context(), testRepo("1.0.0", names...), "", nil)
	if !errors.Is(err, depot.ErrCatalogTooLarge) || errors.Is(err, depot.ErrCatalogUnavailable) {
		t.Fatalf("insert of a huge record: %v", err)
	}
	if repos, err := cat.Repos(t.Context()); err != nil || len(repos) != 0 {
		t.Fatalf("repos = %d, %v", len(repos), err)
	}
}
