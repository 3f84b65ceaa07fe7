package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"depot/depot"
	"depot/depot/auditchain"
	"depot/depot/etcdlocal"
	"depot/server/api"
	"depot/tuf/tuftest"
)

// TestHA_TwoCoordinatorsSoak runs two coordinators on one etcd catalog
// for -ha.duration of concurrent uploads (sometimes the same repository
// through both at once), prunes and sled registry changes, while every
// sled's config and holdings are sampled. Then it replays the catalog's
// whole history from etcd and checks: every catalog transaction wrote the
// head key; the generation rose by one exactly when the wanted set
// changed; every acknowledged upload and prune is one change of the
// repositories, none lost and none extra; every config a sled held is the
// wanted set of its generation, and a sled's generation never fell; no
// sled deleted an artifact that every config it held meanwhile wanted;
// the audit chain verifies and counts every acknowledged change; at the
// end every repository resolves and every sled holds the wanted set.
func TestHA_TwoCoordinatorsSoak(t *testing.T) {
	cl := haCluster(t)
	prefix := haPrefix(t)
	ctx := context.Background()

	// Eight repositories of two artifacts: one of its own, one shared with
	// its neighbour, so a prune must keep what the neighbour still wants.
	const nrepos = 8
	versions := make([]string, nrepos)
	bodies := make([][]byte, nrepos)
	roots := make([]string, nrepos)
	artifacts := make([][]api.Digest, nrepos)
	for i := range nrepos {
		versions[i] = fmt.Sprintf("8.%d.0", i)
		own, ownD := randomBlob(32<<10+i, byte(40+i))
		shared, sharedD := randomBlob(48<<10+i/2, byte(60+i/2))
		var path string
		path, roots[i] = soakRepo(t, versions[i], map[string][]byte{"own.bin": own, "shared.bin": shared})
		artifacts[i] = []api.Digest{ownD, sharedD}
		var err error
		if bodies[i], err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}

	a := startHA(t, cl, prefix, "a", roots[0], nil)
	b := startHA(t, cl, prefix, "b", roots[0], nil)
	s1 := startDaemon(t, t.TempDir(), "--coordinator=false")
	s3 := startDaemon(t, t.TempDir(), "--coordinator=false")
	for _, r := range roots[1:] {
		doc, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.op.AddTrustRoot(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	register(t, b.op, map[string]*daemon{"a": a.daemon, "b": b.daemon, "s1": s1, "s3-0": s3})
	cat := haCatalog(t, cl, prefix)
	nodes := []*haNode{a, b}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, duration %v", seed, *haDuration)
	m := &soakModel{present: map[string]bool{}, recorded: map[string][]span{}}
	locks := make([]sync.Mutex, nrepos)
	end := time.Now().Add(*haDuration)
	var workers sync.WaitGroup

	// Uploads and prunes through both coordinators. A version is worked
	// on by one worker at a time (its lock), so the model knows whether it
	// is recorded; different versions race freely.
	upload := func(n *haNode, i int) (api.UploadResult, error) {
		return n.op.UploadRepo(ctx, haRepoName(versions[i]), "", bytes.NewReader(bodies[i]), int64(len(bodies[i])))
	}
	for w, n := range nodes {
		other := nodes[1-w]
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for time.Now().Before(end) && !t.Failed() {
				i := rng.IntN(nrepos)
				if !locks[i].TryLock() {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				m.step(t, versions[i], n, other, rng.IntN(4) == 0, upload, i)
				locks[i].Unlock()
			}
		})
	}

	// Sled changes: the storage sled s3 moves to a new registry id while
	// the old one is expunged, through either coordinator.
	sledIDs := 1
	workers.Go(func() {
		for k := 0; time.Now().Before(end) && !t.Failed(); k++ {
			time.Sleep(700 * time.Millisecond)
			n, o := nodes[k%2], nodes[1-k%2]
			id := fmt.Sprintf("s3-%d", k+1)
			if _, err := n.op.PutSled(ctx, api.SledRecord{ID: id, ControlURL: s3.sledURL, DepotURL: s3.depotURL}); err != nil {
				t.Errorf("register %s: %v", id, err)
				return
			}
			if _, err := o.op.ExpungeSled(ctx, fmt.Sprintf("s3-%d", k)); err != nil {
				t.Errorf("expunge s3-%d: %v", k, err)
				return
			}
			sledIDs++
		}
	})

	// Samplers: each sled's config before and after its listing.
	sleds := map[string]*daemon{"a": a.daemon, "b": b.daemon, "s1": s1, "s3": s3}
	samples := map[string]*[]sledSample{}
	stopSampling := make(chan struct{})
	var samplers sync.WaitGroup
	for name, d := range sleds {
		out := &[]sledSample{}
		samples[name] = out
		samplers.Go(func() {
			for {
				select {
				case <-stopSampling:
					return
				case <-time.After(30 * time.Millisecond):
				}
				s, err := sample(ctx, d)
				if err != nil {
					t.Errorf("sample sled %s: %v", name, err)
					return
				}
				*out = append(*out, s)
			}
		})
	}

	workers.Wait()
	if t.Failed() {
		close(stopSampling)
		samplers.Wait()
		t.FailNow()
	}
	t.Logf("workload: %d uploads inserted, %d answered already_exists (%d of them racing the same upload through both coordinators), %d prunes, %d sled ids",
		m.inserted, m.already, m.raced, m.deleted, sledIDs)

	// Quiesce: every sled converges on the final wanted set.
	gen, want := wantedSet(t, cat)
	for name, d := range sleds {
		waitHolds(t, name, d, want, true, 60*time.Second)
	}
	for name, d := range sleds {
		waitUntil(t, 30*time.Second, "sled "+name+" at the final generation", func() bool {
			cfg, err := d.sled.GetConfig(ctx)
			return err == nil && cfg.Generation == gen && cfg.CatalogID == cat.ID()
		})
	}
	close(stopSampling)
	samplers.Wait()
	for name, d := range sleds { // a last look at the converged rack
		s, err := sample(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		*samples[name] = append(*samples[name], s)
	}

	// The catalog agrees with the model: no lost update, no extra one.
	repos, err := cat.Repos(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range repos {
		got = append(got, r.SystemVersion)
		byHash, err := cat.RepoByHash(t.Context(), r.Hash)
		if err != nil || byHash.SystemVersion != r.SystemVersion {
			t.Errorf("repository %s does not resolve by its hash: %v", r.SystemVersion, err)
		}
		for _, art := range r.Artifacts {
			if !want[api.Digest(art.Hash)] {
				t.Errorf("repository %s references %s, which is not in the wanted set", r.SystemVersion, art.Hash)
			}
		}
	}
	if wantRepos := m.recordedNow(); !slices.Equal(slices.Sorted(slices.Values(got)), wantRepos) {
		t.Fatalf("catalog holds %v, the acknowledged operations leave %v", got, wantRepos)
	}

	// The whole history, from etcd.
	h := replayHistory(t, cl, prefix)
	if h.repoChanges != m.inserted+m.deleted {
		t.Errorf("history has %d changes of the repositories, the acknowledged inserts and prunes are %d", h.repoChanges, m.inserted+m.deleted)
	}
	if h.gen != gen {
		t.Errorf("history ends at generation %d, the catalog says %d", h.gen, gen)
	}
	t.Logf("history: %d catalog transactions, %d generations, %d repository changes", h.txns, h.gen, h.repoChanges)

	// What the sleds held, against the history.
	for name, ss := range samples {
		checkSamples(t, name, *ss, h, cat.ID(), m, versions, artifacts)
	}

	// The audit chain verifies and holds every acknowledged change.
	var v auditchain.Verifier
	var since uint64
	counts := map[string]int{}
	for {
		page, err := a.op.Audit(ctx, since, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range page.Items {
			if err := v.Next(line); err != nil {
				t.Fatalf("audit chain: %v", err)
			}
			var r api.AuditRecord
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatal(err)
			}
			if r.Outcome.ErrorCode == "" {
				counts[r.Action]++
			}
		}
		since, _ = v.Head()
		if len(page.Items) == 0 || since >= page.HeadSeq {
			break
		}
	}
	if counts["repo.upload"] != m.inserted+m.already || counts["repo.prune"] != m.deleted {
		t.Errorf("audit log counts %v; acknowledged: %d uploads (%d inserted), %d prunes", counts, m.inserted+m.already, m.inserted, m.deleted)
	}
	seq, _ := v.Head()
	t.Logf("audit chain of %d records verifies", seq)
}

// soakRepo writes a signed repository of the given files and returns its
// path and its root's path.
func soakRepo(t testing.TB, version string, files map[string][]byte) (repo, root string) {
	t.Helper()
	dir := t.TempDir()
	b := tuftest.NewBuilder(t)
	var arts []tuftest.Artifact
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b.AddTarget(name, files[name])
		arts = append(arts, tuftest.Artifact{Name: strings.TrimSuffix(name, ".bin"), Version: version, Kind: "blob", Target: name})
	}
	b.SetManifest(version, arts)
	repo, root = filepath.Join(dir, haRepoName(version)), filepath.Join(dir, "root.json")
	f, err := os.Create(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteZip(f, true); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root, b.RootJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	return repo, root
}

// span is a time a repository was recorded for sure: from the answer to
// its upload to the request that pruned it (zero: not pruned).
type span struct{ from, to time.Time }

// soakModel is what the acknowledged operations say the catalog holds.
type soakModel struct {
	mu                                sync.Mutex
	present                           map[string]bool
	recorded                          map[string][]span
	inserted, already, raced, deleted int
}

// step uploads version (index i) if the model has it absent, through n or
// (race) through n and other at once, or prunes it through n.
func (m *soakModel) step(t *testing.T, version string, n, other *haNode, race bool,
	upload func(*haNode, int) (api.UploadResult, error), i int) {
	m.mu.Lock()
	present := m.present[version]
	m.mu.Unlock()
	if present {
		start := time.Now()
		if err := n.op.DeleteRepo(context.Background(), version); err != nil {
			t.Errorf("prune %s through %s: %v", version, n.id, err)
			return
		}
		m.mu.Lock()
		m.present[version] = false
		sp := m.recorded[version]
		sp[len(sp)-1].to = start
		m.deleted++
		m.mu.Unlock()
		return
	}
	if !race {
		res, err := upload(n, i)
		if err != nil || res.Status != api.UploadInserted {
			t.Errorf("upload %s through %s: %+v, %v (the model has it absent)", version, n.id, res, err)
			return
		}
		m.record(version, 1, 0, false)
		return
	}
	var wg sync.WaitGroup
	var res [2]api.UploadResult
	var errs [2]error
	for k, c := range []*haNode{n, other} {
		wg.Go(func() { res[k], errs[k] = upload(c, i) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Errorf("upload %s through both coordinators at once: %v", version, err)
		return
	}
	statuses := []string{res[0].Status, res[1].Status}
	slices.Sort(statuses)
	if !slices.Equal(statuses, []string{api.UploadAlreadyExists, api.UploadInserted}) {
		t.Errorf("upload %s through both coordinators at once: %v, want one inserted and one already_exists", version, statuses)
		return
	}
	m.record(version, 1, 1, true)
}

func (m *soakModel) record(version string, inserted, already int, raced bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.present[version] = true
	m.recorded[version] = append(m.recorded[version], span{from: time.Now()})
	m.inserted += inserted
	m.already += already
	if raced {
		m.raced++
	}
}

func (m *soakModel) spans(version string) []span {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.recorded[version])
}

// recordedNow lists the versions the model has recorded, sorted.
func (m *soakModel) recordedNow() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for v, p := range m.present {
		if p {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// sledSample is one look at a sled: its config, its listing, its config
// again; nil configs while it is unmanaged.
type sledSample struct {
	start, end    time.Time
	before, after *api.Config
	list          map[api.Digest]int
}

func sample(ctx context.Context, d *daemon) (sledSample, error) {
	s := sledSample{start: time.Now()}
	cfg := func() (*api.Config, error) {
		c, err := d.sled.GetConfig(ctx)
		if errors.Is(err, api.ErrNoConfig) {
			return nil, nil
		}
		return &c, err
	}
	var err error
	if s.before, err = cfg(); err != nil {
		return s, err
	}
	if _, s.list, err = d.sled.ListArtifacts(ctx); err != nil {
		return s, err
	}
	if s.after, err = cfg(); err != nil {
		return s, err
	}
	s.end = time.Now()
	return s, nil
}

func genOf(c *api.Config) uint64 {
	if c == nil {
		return 0
	}
	return c.Generation
}

// checkSamples checks one sled's samples against the catalog's history:
// its generation never falls, each config it held is the wanted set of
// its generation from this catalog, and an artifact that disappears
// between two samples was unwanted by some generation the sled could
// have held in between.
func checkSamples(t *testing.T, name string, ss []sledSample, h history, catalogID string, m *soakModel, versions []string, artifacts [][]api.Digest) {
	t.Helper()
	var last uint64
	disappeared := 0
	for i, s := range ss {
		for _, c := range []*api.Config{s.before, s.after} {
			if c == nil {
				if last > 0 {
					t.Errorf("sled %s lost its config after generation %d", name, last)
				}
				continue
			}
			if c.Generation < last {
				t.Errorf("sled %s went from generation %d back to %d", name, last, c.Generation)
			}
			last = c.Generation
			if c.CatalogID != catalogID {
				t.Errorf("sled %s holds a config of catalog %s, want %s", name, c.CatalogID, catalogID)
			}
			w, ok := h.wanted[c.Generation]
			if !ok {
				t.Errorf("sled %s holds generation %d, which the catalog never had", name, c.Generation)
			} else if !sameDigests(c.Artifacts, slices.Collect(maps.Keys(w))) {
				t.Errorf("sled %s: generation %d lists %d artifacts, the catalog's wanted set had %d", name, c.Generation, len(c.Artifacts), len(w))
			}
		}
		if i == 0 {
			continue
		}
		prev := ss[i-1]
		lo, hi := genOf(prev.before), genOf(s.after)
		for dg := range prev.list {
			if _, still := s.list[dg]; still {
				continue
			}
			disappeared++
			wantedThroughout := lo > 0
			for g := lo; g <= hi && wantedThroughout; g++ {
				wantedThroughout = h.wanted[g][dg]
			}
			if wantedThroughout {
				t.Errorf("sled %s deleted %s between %s and %s although every generation it held (%d..%d) wanted it",
					name, dg, prev.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"), lo, hi)
			}
			// And none that a repository wanted all along: recorded
			// (acknowledged) before the first look, not pruned (asked)
			// before the second.
			for vi, v := range versions {
				if !slices.Contains(artifacts[vi], dg) {
					continue
				}
				for _, sp := range m.spans(v) {
					if !sp.from.After(prev.start) && (sp.to.IsZero() || !sp.to.Before(s.end)) {
						t.Errorf("sled %s deleted %s between %s and %s while repository %s, recorded at %s, wanted it",
							name, dg, prev.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"), v, sp.from.Format("15:04:05.000"))
					}
				}
			}
		}
	}
	t.Logf("sled %s: %d samples, %d artifacts disappeared (all unwanted), last generation %d", name, len(ss), disappeared, last)
}

// history is the catalog's history replayed from etcd.
type history struct {
	txns        int
	gen         uint64
	repoChanges int
	wanted      map[uint64]map[api.Digest]bool // the wanted set of each generation
}

// replayHistory reads every revision of the catalog's keys from etcd (the
// embedded cluster never compacts) and checks each transaction: it wrote
// the head key, and the generation rose by one exactly when the wanted
// set changed.
func replayHistory(t *testing.T, cl *etcdlocal.Cluster, prefix string) history {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// A key of its own marks the end of the history to read.
	sentinel := prefix + "~end-of-test"
	if _, err := cli.Put(ctx, sentinel, ""); err != nil {
		t.Fatal(err)
	}
	type rev struct {
		num    int64
		events []*clientv3.Event
	}
	var revs []rev
	wc := cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(1))
read:
	for resp := range wc {
		if err := resp.Err(); err != nil {
			t.Fatalf("watch the catalog's history: %v", err)
		}
		for _, ev := range resp.Events {
			if string(ev.Kv.Key) == sentinel {
				break read
			}
			if n := len(revs); n == 0 || revs[n-1].num != ev.Kv.ModRevision {
				revs = append(revs, rev{num: ev.Kv.ModRevision})
			}
			revs[len(revs)-1].events = append(revs[len(revs)-1].events, ev)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the catalog's history did not arrive within 60s")
	}

	h := history{wanted: map[uint64]map[api.Digest]bool{0: {}}}
	state := map[string][]byte{}
	genKey, head, reposPrefix := prefix+"meta/generation", prefix+"!head", prefix+"repos/"
	wanted := map[api.Digest]bool{}
	for _, r := range revs {
		catalog, wroteHead := false, false
		for _, ev := range r.events {
			k := string(ev.Kv.Key)
			switch {
			case k == head:
				wroteHead = true
			case !strings.HasPrefix(k, prefix+"!"):
				catalog = true
			}
			if strings.HasPrefix(k, reposPrefix) {
				h.repoChanges++
			}
			if ev.Type == clientv3.EventTypeDelete {
				delete(state, k)
			} else {
				state[k] = ev.Kv.Value
			}
		}
		if !catalog {
			continue // presence, election
		}
		h.txns++
		if !wroteHead {
			t.Errorf("revision %d changed the catalog without writing its head key", r.num)
		}
		var gen uint64
		if v := state[genKey]; len(v) == 8 {
			gen = binary.BigEndian.Uint64(v)
		}
		now := map[api.Digest]bool{}
		for k, v := range state {
			if !strings.HasPrefix(k, reposPrefix) {
				continue
			}
			var repo depot.Repo
			if err := json.Unmarshal(v, &repo); err != nil {
				t.Fatalf("revision %d: repository %s: %v", r.num, k, err)
			}
			for _, a := range repo.Artifacts {
				now[api.Digest(a.Hash)] = true
			}
		}
		changed := !maps.Equal(now, wanted)
		switch {
		case gen == h.gen && changed:
			t.Errorf("revision %d changed the wanted set without a new generation (%d)", r.num, gen)
		case gen != h.gen && gen != h.gen+1:
			t.Errorf("revision %d moved the generation from %d to %d", r.num, h.gen, gen)
		case gen != h.gen && !changed:
			t.Errorf("revision %d raised the generation to %d without changing the wanted set", r.num, gen)
		}
		h.gen, wanted = gen, now
		h.wanted[gen] = now
	}
	return h
}
