package depot_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/store"
)

// Tests of catalog identity: the config rule, the sled's use of it, the
// admin move between catalogs, and what the coordinator does when a sled
// serves another catalog.

const (
	catA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	catB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestCheckConfig_Rules(t *testing.T) {
	x, y := digest(artifact(1)), digest(artifact(2))
	cfg := func(id string, g uint64, ds ...store.Digest) *depot.Config {
		return &depot.Config{CatalogID: id, Generation: g, Artifacts: ds}
	}
	for _, c := range []struct {
		name   string
		cur    *depot.Config
		next   depot.Config
		change bool
		want   error
	}{
		{"unmanaged takes a catalog's", nil, *cfg(catA, 1, x), true, nil},
		{"unmanaged takes one that names none", nil, *cfg("", 1, x), true, nil},
		{"same catalog, higher", cfg(catA, 3, x), *cfg(catA, 4), true, nil},
		{"same catalog, same generation and set", cfg(catA, 3, x, y), *cfg(catA, 3, y, x), false, nil},
		{"same catalog, same generation, other set", cfg(catA, 3, x), *cfg(catA, 3, y), false, depot.ErrConfigGeneration},
		{"same catalog, lower", cfg(catA, 3, x), *cfg(catA, 2, x), false, depot.ErrConfigGeneration},
		{"another catalog, higher", cfg(catA, 3, x), *cfg(catB, 4), false, depot.ErrCatalogMismatch},
		{"another catalog, far higher", cfg(catA, 3, x), *cfg(catB, 1<<40), false, depot.ErrCatalogMismatch},
		{"another catalog, same generation and set", cfg(catA, 3, x), *cfg(catB, 3, x), false, depot.ErrCatalogMismatch},
		{"none offered to a catalog's sled", cfg(catA, 3, x), *cfg("", 9), false, depot.ErrCatalogMismatch},
		{"none to none, higher (omicron)", cfg("", 3, x), *cfg("", 4, y), true, nil},
		{"none to none, lower (omicron)", cfg("", 3, x), *cfg("", 2, x), false, depot.ErrConfigGeneration},
		{"a catalog claims a config that names none, same generation and set", cfg("", 3, x), *cfg(catA, 3, x), true, nil},
		{"a catalog cannot claim at a higher generation", cfg("", 3, x), *cfg(catA, 4, x), false, depot.ErrCatalogMismatch},
		{"a catalog cannot claim with another set", cfg("", 3, x), *cfg(catA, 3, y), false, depot.ErrCatalogMismatch},
		{"adopted (generation 0) takes its catalog's first config", cfg(catA, 0, x), *cfg(catA, 1, y), true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			change, err := depot.CheckConfig(c.cur, c.next)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) || change != c.change {
				t.Fatalf("CheckConfig = %v, %v; want %v, %v", change, err, c.change, c.want)
			}
			if errors.Is(err, depot.ErrCatalogMismatch) && c.cur.CatalogID != "" && c.next.CatalogID != "" &&
				(!strings.Contains(err.Error(), c.cur.CatalogID) || !strings.Contains(err.Error(), c.next.CatalogID)) {
				t.Fatalf("message does not name both catalogs: %v", err)
			}
		})
	}
}

func TestSled_SetConfig_AnotherCatalogChangesNothing(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	ctx := context.Background()
	var keep []store.Digest
	for i := range 3 {
		if err := e.put(t, artifact(i), nil); err != nil {
			t.Fatal(err)
		}
		keep = append(keep, digest(artifact(i)))
	}
	if err := e.sled.SetConfig(ctx, depot.Config{CatalogID: catA, Generation: 5, Artifacts: keep}); err != nil {
		t.Fatal(err)
	}
	for _, next := range []depot.Config{
		{CatalogID: catB, Generation: 6},
		{CatalogID: catB, Generation: 1 << 40},
		{Generation: 7},
	} {
		if err := e.sled.SetConfig(ctx, next); !errors.Is(err, depot.ErrCatalogMismatch) {
			t.Fatalf("SetConfig(%+v) = %v, want ErrCatalogMismatch", next, err)
		}
	}
	e.sled.Reconcile()
	cfg, err := e.sled.Config()
	if err != nil || cfg.CatalogID != catA || cfg.Generation != 5 || len(stored(t, e.st)) != 3 {
		t.Fatalf("after refusals: config %+v, %v; %d artifacts stored", cfg, err, len(stored(t, e.st)))
	}
	// The catalog survives a restart.
	e.close()
	e.open(t, depot.SledOptions{})
	if cfg, _ := e.sled.Config(); cfg.CatalogID != catA || cfg.Generation != 5 {
		t.Fatalf("after restart: %+v", cfg)
	}
	if st := e.sled.Status(); st.CatalogID != catA {
		t.Fatalf("status catalog = %q", st.CatalogID)
	}
}

func TestSled_AdoptCatalog(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	ctx := context.Background()
	if err := e.sled.AdoptCatalog(ctx, catA, catB); !errors.Is(err, depot.ErrNoConfig) {
		t.Fatalf("adopting an unmanaged sled: %v", err)
	}
	var keep []store.Digest
	for i := range 2 {
		if err := e.put(t, artifact(i), nil); err != nil {
			t.Fatal(err)
		}
		keep = append(keep, digest(artifact(i)))
	}
	if err := e.sled.SetConfig(ctx, depot.Config{CatalogID: catA, Generation: 40, Artifacts: keep}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ from, to string }{
		{catB, catB},                  // the sled does not serve B
		{depot.NoCatalog, catB},       // nor no catalog
		{catA, "not-a-catalog-id"},    // malformed target
		{"", catB},                    // from is required
		{catA, strings.ToUpper(catB)}, // ids are lowercase
	} {
		if err := e.sled.AdoptCatalog(ctx, bad.from, bad.to); err == nil {
			t.Fatalf("AdoptCatalog(%q, %q) succeeded", bad.from, bad.to)
		}
	}
	if cfg, _ := e.sled.Config(); cfg.CatalogID != catA || cfg.Generation != 40 {
		t.Fatalf("a refused adoption changed the config: %+v", cfg)
	}
	if err := e.sled.AdoptCatalog(ctx, catA, catB); err != nil {
		t.Fatal(err)
	}
	// Done again (a flag left in place), it changes nothing.
	if err := e.sled.AdoptCatalog(ctx, catA, catB); err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.sled.Config()
	if cfg.CatalogID != catB || cfg.Generation != 0 || !slices.Equal(cfg.Artifacts, depotSorted(keep)) {
		t.Fatalf("adopted config = %+v", cfg)
	}
	e.sled.Reconcile()
	if len(stored(t, e.st)) != 2 {
		t.Fatal("the move deleted artifacts")
	}
	// The old catalog is refused, however high its generation; the new one
	// takes the sled at any generation.
	if err := e.sled.SetConfig(ctx, depot.Config{CatalogID: catA, Generation: 41, Artifacts: keep}); !errors.Is(err, depot.ErrCatalogMismatch) {
		t.Fatalf("old catalog after the move: %v", err)
	}
	if err := e.sled.SetConfig(ctx, depot.Config{CatalogID: catB, Generation: 2, Artifacts: keep[:1]}); err != nil {
		t.Fatalf("new catalog's config: %v", err)
	}
}

func depotSorted(ds []store.Digest) []store.Digest {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b store.Digest) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// A mirror that missed the move still holds the old catalog's config at a
// higher generation: the ledger's sequence number, not the generation,
// decides which copy wins at start-up.
func TestSled_Ledger_AdoptionSurvivesAStaleMirror(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	ctx := context.Background()
	if err := e.sled.SetConfig(ctx, depot.Config{CatalogID: catA, Generation: 40}); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(e.mirrors[1], "meta", "artifacts-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sled.AdoptCatalog(ctx, catA, catB); err != nil {
		t.Fatal(err)
	}
	e.close()
	if err := os.WriteFile(filepath.Join(e.mirrors[1], "meta", "artifacts-config.json"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	e.open(t, depot.SledOptions{})
	if cfg, _ := e.sled.Config(); cfg.CatalogID != catB || cfg.Generation != 0 {
		t.Fatalf("after restart with a stale mirror: %+v, want catalog B at generation 0", cfg)
	}
	again, _ := os.ReadFile(filepath.Join(e.mirrors[1], "meta", "artifacts-config.json"))
	if !strings.Contains(string(again), catB) {
		t.Fatalf("stale ledger copy not rewritten: %s", again)
	}
}

func TestCatalog_ID_MadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *depot.Catalog {
		c, err := depot.OpenCatalog(filepath.Join(dir, name), 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open("a.db")
	id := c.ID()
	c.Close()
	if !depot.ValidCatalogID(id) {
		t.Fatalf("catalog id %q", id)
	}
	c = open("a.db")
	defer c.Close()
	if c.ID() != id {
		t.Fatalf("catalog id changed on reopen: %s, then %s", id, c.ID())
	}
	other := open("b.db")
	defer other.Close()
	if other.ID() == id {
		t.Fatal("two catalogs share an id")
	}
}

// strayCoordinator is a second coordinator with its own catalog and local
// sled, registered with the same sleds as r's.
func strayCoordinator(t *testing.T, r *rack) (*coordEnv, *depot.Replicator) {
	t.Helper()
	b := newCoordEnv(t)
	for url, id := range r.ids {
		if _, err := b.cat.PutSled(t.Context(), depot.SledRecord{ID: id, ControlURL: url, DepotURL: url}, nil); err != nil {
			t.Fatal(err)
		}
	}
	rep := depot.NewReplicator(b.coord, depot.ReplicationOptions{
		MinReplication: 2,
		Local:          depot.LocalSled{Sled: b.sled, DepotURL: "http://stray"},
		LocalStore:     b.st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			return depot.LocalSled{Sled: r.sleds[rec.ControlURL].sled, DepotURL: rec.DepotURL}
		},
		Logger: slog.New(slog.DiscardHandler),
		Seed:   2,
	})
	return b, rep
}

func TestReplicator_StrayCatalogWritesToNoSled(t *testing.T) {
	r := newRack(t, 3, 2)
	res := r.upload(t, "1.0.0", 1)
	r.converge(5)
	b, stray := strayCoordinator(t, r)
	// B reaches A's generation + 1 with repositories of its own.
	for i, v := range []string{"8.0.0", "8.1.0"} {
		zip, root, _ := repoArchive(t, v, byte(200+i))
		if _, _, err := b.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b.upload(t, zip); err != nil {
			t.Fatal(err)
		}
	}
	act := stray.RunOnce(context.Background())
	if act.Generation != 2 || !strings.Contains(act.Error, depot.ConflictCatalog) || !strings.Contains(act.Error, "wrote to no sled") {
		t.Fatalf("stray activation = %+v", act)
	}
	if act.Counters[depot.OpPutConfig].OK+act.Counters[depot.OpPutConfig].Err+act.Counters[depot.OpPut].OK+act.Counters[depot.OpCopy].OK != 0 {
		t.Fatalf("stray activation sent writes: %+v", act.Counters)
	}
	st := stray.Status(t.Context())
	if st.CatalogID != b.cat.ID() {
		t.Fatalf("status catalog id %q", st.CatalogID)
	}
	conflicts := 0
	for _, s := range st.Sleds {
		if s.ID == depot.LocalSledID {
			continue
		}
		if s.Conflict != depot.ConflictCatalog || s.CatalogID != r.coord.cat.ID() || s.ConfigGeneration == nil || *s.ConfigGeneration != 1 {
			t.Fatalf("stray's view of %s: %+v", s.ID, s)
		}
		conflicts++
	}
	if conflicts != 3 {
		t.Fatalf("%d sleds reported in conflict, want 3", conflicts)
	}
	for url, e := range r.sleds {
		e.sled.Reconcile()
		cfg, _ := e.sled.Config()
		if cfg.CatalogID != r.coord.cat.ID() || cfg.Generation != 1 {
			t.Fatalf("sled %s config %+v after the stray activation", url, cfg)
		}
		for _, a := range res.Repo.Artifacts {
			if !stored(t, e.st)[a.Hash] {
				t.Fatalf("sled %s lost %s", url, a.Hash)
			}
		}
	}
	// The stray's own repository counts nothing on sleds it could not
	// list.
	repo, err := b.cat.Repo(t.Context(), "8.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if p := stray.Progress(repo); p.State == depot.RepoComplete || len(p.UnknownSleds) != 3 {
		t.Fatalf("stray progress = %+v", p)
	}
	// A goes on unbothered.
	if a := r.converge(2); a[len(a)-1].Error != "" {
		t.Fatalf("A after the stray: %+v", a)
	}
	if p := r.rep.Progress(res.Repo); p.State != depot.RepoComplete {
		t.Fatalf("A's progress = %+v", p)
	}
}

func TestReplicator_ProgressOnlyCountsWhatTheLastCollectListed(t *testing.T) {
	r := newRack(t, 3, 4) // quorum: every sled
	res := r.upload(t, "1.0.0", 1)
	r.converge(5)
	if p := r.rep.Progress(res.Repo); p.State != depot.RepoComplete {
		t.Fatalf("progress = %+v", p)
	}
	// sled-0 stops answering: at once not counted.
	r.setDown("http://sled-0:1", true)
	r.rep.RunOnce(context.Background())
	p := r.rep.Progress(res.Repo)
	if p.State != depot.RepoReplicating || !slices.Equal(p.UnknownSleds, []string{"sled-0"}) {
		t.Fatalf("with sled-0 down: %s, unknown %v", p.State, p.UnknownSleds)
	}
	for _, a := range p.Artifacts {
		if slices.Contains(a.Sleds, "sled-0") {
			t.Fatalf("%s counted on sled-0, which did not answer", a.Name)
		}
	}
	r.setDown("http://sled-0:1", false)
	r.converge(3)

	// Artifacts leave every sled but sled-0 behind the coordinator's back
	// (the coordinator's own copies too, so no PUT can bring them back),
	// and the copies from sled-0 fail: the very next activation reports
	// the repository replicating.
	for url, e := range r.sleds {
		if url == "http://sled-0:1" {
			continue
		}
		for _, a := range res.Repo.Artifacts {
			if err := e.st.Delete(context.Background(), a.Hash); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.peer.mu.Lock()
	for url := range r.sleds {
		r.peer.corrupt[url] = true
	}
	r.peer.mu.Unlock()
	act := r.rep.RunOnce(context.Background())
	p = r.rep.Progress(res.Repo)
	if p.State != depot.RepoReplicating || len(p.UnknownSleds) != 0 || act.Counters[depot.OpCopy].Err == 0 {
		t.Fatalf("after artifacts left the sleds (activation %+v): %+v", act, p)
	}
	for _, a := range p.Artifacts {
		if !slices.Equal(a.Sleds, []string{"sled-0"}) {
			t.Fatalf("%s counted on %v, want only sled-0", a.Name, a.Sleds)
		}
	}
	r.peer.mu.Lock()
	clear(r.peer.corrupt)
	r.peer.mu.Unlock()
	r.converge(3)
	if p := r.rep.Progress(res.Repo); p.State != depot.RepoComplete {
		t.Fatalf("after repair: %+v", p)
	}
}

// gatedSled holds every copy wait until release is closed, calling
// started first.
type gatedSled struct {
	depot.SledClient
	started func()
	release chan struct{}
}

func (g gatedSled) WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (depot.CopyJob, error) {
	g.started()
	select {
	case <-g.release:
	case <-ctx.Done():
		return depot.CopyJob{}, ctx.Err()
	}
	return g.SledClient.WaitCopy(ctx, d, wait)
}

func TestReplicator_DurableAsSoonAsTheQuorumsRequestsSucceed(t *testing.T) {
	r := newRack(t, 3, 2)
	res := r.upload(t, "1.0.0", 1)
	started, release := make(chan struct{}), make(chan struct{})
	onStart := sync.OnceFunc(func() { close(started) })
	rep := depot.NewReplicator(r.coord.coord, depot.ReplicationOptions{
		MinReplication: 2,
		Local:          depot.LocalSled{Sled: r.coord.sled, DepotURL: "http://local:1"},
		LocalStore:     r.coord.st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			return gatedSled{depot.LocalSled{Sled: r.sleds[rec.ControlURL].sled, DepotURL: rec.DepotURL}, onStart, release}
		},
		Logger: slog.New(slog.DiscardHandler),
		Seed:   1,
	})
	done := make(chan depot.Activation, 1)
	go func() { done <- rep.RunOnce(context.Background()) }()
	select {
	case <-started:
	case a := <-done:
		t.Fatalf("activation ended without a copy: %+v", a)
	case <-time.After(30 * time.Second):
		t.Fatal("no copy started")
	}
	// The PUTs (the local copy plus one PUT make the quorum of 2) have
	// landed, the copies are held: durable, not yet complete.
	if p := rep.Progress(res.Repo); p.State != depot.RepoDurable {
		t.Fatalf("during the copies: %+v", p)
	}
	close(release)
	<-done
	if p := rep.Progress(res.Repo); p.State != depot.RepoComplete {
		t.Fatalf("after the activation: %+v", p)
	}
}

// lateSled reports itself unmanaged when read, as if another coordinator
// wrote to it between collect's read and its write.
type lateSled struct{ depot.SledClient }

func (lateSled) GetConfig(context.Context) (depot.Config, error) {
	return depot.Config{}, depot.ErrNoConfig
}

func TestReplicator_RefusalAtTheWriteStopsTheActivation(t *testing.T) {
	r := newRack(t, 2, 1)
	res := r.upload(t, "1.0.0", 1)
	// sled-0 already serves another catalog, though collect reads it as
	// unmanaged.
	taken := r.sleds["http://sled-0:1"]
	if err := taken.sled.SetConfig(context.Background(), depot.Config{CatalogID: catB, Generation: 1}); err != nil {
		t.Fatal(err)
	}
	rep := depot.NewReplicator(r.coord.coord, depot.ReplicationOptions{
		Local:      depot.LocalSled{Sled: r.coord.sled, DepotURL: "http://local:1"},
		LocalStore: r.coord.st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			c := depot.SledClient(depot.LocalSled{Sled: r.sleds[rec.ControlURL].sled, DepotURL: rec.DepotURL})
			if rec.ControlURL == "http://sled-0:1" {
				c = lateSled{c}
			}
			return c
		},
		Logger: slog.New(slog.DiscardHandler),
		Seed:   3,
	})
	act := rep.RunOnce(context.Background())
	if !strings.Contains(act.Error, depot.ConflictCatalog) || !strings.Contains(act.Error, "refused at the write") || act.Planned != 0 {
		t.Fatalf("activation = %+v", act)
	}
	for _, s := range rep.Status(t.Context()).Sleds {
		if s.ID == "sled-0" && s.Conflict != depot.ConflictCatalog {
			t.Fatalf("sled-0 state = %+v", s)
		}
	}
	if cfg, _ := taken.sled.Config(); cfg.CatalogID != catB {
		t.Fatalf("sled-0 config = %+v", cfg)
	}
	if p := rep.Progress(res.Repo); p.State == depot.RepoComplete || !slices.Contains(p.UnknownSleds, "sled-0") {
		t.Fatalf("progress = %+v", p)
	}
}
