package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
	"depot/server/servertest"
	"depot/tuf/tuftest"
)

// End-to-end tests with real depotd processes on 127.0.0.1.

func randomBlob(n int, seed byte) ([]byte, api.Digest) {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b, sha256.Sum256(b)
}

// waitUntil polls cond (bounded) — only for state that has no long-poll.
func waitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestE2E_CopyBetweenDaemons(t *testing.T) {
	a := startDaemon(t, t.TempDir(), "--coordinator=false")
	b := startDaemon(t, t.TempDir(), "--coordinator=false")
	ctx := context.Background()
	data, d := randomBlob(5<<20, 1)
	if _, err := a.sled.PutArtifact(ctx, d, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := b.sled.CopyFromDepot(ctx, d, nil, a.depotURL); err != nil {
		t.Fatal(err)
	}
	job, err := b.sled.Copy(ctx, d, 30*time.Second)
	if err != nil || job.State != api.CopySucceeded || job.Bytes != int64(len(data)) {
		t.Fatalf("copy job = %+v, %v", job, err)
	}
	_, list, err := b.sled.ListArtifacts(ctx)
	if err != nil || list[d] != 2 {
		t.Fatalf("b lists %v, %v", list, err)
	}
	rc, _, err := b.depot.GetArtifact(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("copied bytes differ")
	}
}

// TestE2E_SIGKILLDuringCopy kills the receiving daemon in the middle of
// copies and checks after each restart that nothing partial is there, then
// that the copy still works.
func TestE2E_SIGKILLDuringCopy(t *testing.T) {
	a := startDaemon(t, t.TempDir(), "--coordinator=false")
	ctx := context.Background()
	data, d := randomBlob(48<<20, 2)
	if _, err := a.sled.PutArtifact(ctx, d, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 4 {
		b := startDaemon(t, dir, "--coordinator=false")
		if err := b.sled.CopyFromDepot(ctx, d, nil, a.depotURL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(150 * time.Millisecond))))
		b.kill(t)
		b = startDaemon(t, dir, "--coordinator=false")
		checkNothingPartial(t, b)
		if round == 3 {
			if err := b.sled.CopyFromDepot(ctx, d, nil, a.depotURL); err != nil {
				t.Fatal(err)
			}
			if job, err := b.sled.Copy(ctx, d, 30*time.Second); err != nil || job.State != api.CopySucceeded {
				t.Fatalf("copy after the kills = %+v, %v", job, err)
			}
		} else if err := b.sled.DeleteArtifact(ctx, d); err != nil {
			t.Fatal(err)
		}
		b.stop(t)
	}
}

// TestE2E_SIGKILLDuringConfigChange kills a sled while configs arrive and
// checks that after each restart the sled is at one of the generations it
// was given (never a mix), its ledger reads the same on both mirrors, and
// after the start-up reconcile it holds only configured artifacts.
func TestE2E_SIGKILLDuringConfigChange(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var all []api.Digest
	blobs := map[api.Digest][]byte{}
	d := startDaemon(t, dir, "--coordinator=false")
	for i := range 6 {
		data, dg := randomBlob(64<<10+i, byte(10+i))
		if _, err := d.sled.PutArtifact(ctx, dg, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		all = append(all, dg)
		blobs[dg] = data
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	sets := map[uint64][]api.Digest{}
	acked := uint64(0)
	for gen := uint64(1); gen <= 6; gen++ {
		set := slices.Clone(all[:rng.IntN(len(all))+1])
		sets[gen] = set
		done := make(chan error, 1)
		go func() { done <- d.sled.PutConfig(ctx, api.Config{Generation: gen, Artifacts: set}) }()
		time.Sleep(time.Duration(rng.Int64N(int64(3 * time.Millisecond))))
		d.kill(t)
		if err := <-done; err == nil {
			acked = gen
		}
		d = startDaemon(t, dir, "--coordinator=false")
		cfg, err := d.sled.GetConfig(ctx)
		switch {
		case errors.Is(err, api.ErrNoConfig):
			if acked > 0 {
				t.Fatalf("generation %d was acknowledged, the sled has no config after restart", acked)
			}
		case err != nil:
			t.Fatal(err)
		default:
			if cfg.Generation < acked || cfg.Generation > gen {
				t.Fatalf("generation %d after restart; acknowledged %d, last sent %d", cfg.Generation, acked, gen)
			}
			if want := sets[cfg.Generation]; !sameDigests(cfg.Artifacts, want) {
				t.Fatalf("generation %d has set %v, was given %v", cfg.Generation, cfg.Artifacts, want)
			}
			acked = cfg.Generation
			// The start-up reconcile leaves exactly the configured set.
			waitUntil(t, 10*time.Second, "reconciled", func() bool {
				st, err := d.sled.Status(ctx)
				return err == nil && st.Reconciler.Passes > 0 && !st.Reconciler.Running
			})
			stored := storedOnDisk(t, d)
			if !sameDigests(stored, cfg.Artifacts) {
				t.Fatalf("stored %d artifacts after restart, config %d wants %d", len(stored), cfg.Generation, len(cfg.Artifacts))
			}
		}
		checkNothingPartial(t, d)
		// Put back what the reconciler removed, for the next round.
		if cfg, err := d.sled.GetConfig(ctx); err == nil {
			next := cfg.Generation + 1
			sets[next] = all
			if err := d.sled.PutConfig(ctx, api.Config{Generation: next, Artifacts: all}); err != nil {
				t.Fatal(err)
			}
			for dg, data := range blobs {
				if _, err := d.sled.PutArtifactAt(ctx, dg, &next, bytes.NewReader(data), int64(len(data))); err != nil {
					t.Fatal(err)
				}
			}
			acked, gen = next, next
		}
	}
	d.stop(t)
}

func sameDigests(a, b []api.Digest) bool {
	x := map[api.Digest]bool{}
	for _, d := range a {
		x[d] = true
	}
	y := map[api.Digest]bool{}
	for _, d := range b {
		y[d] = true
	}
	if len(x) != len(y) {
		return false
	}
	for d := range x {
		if !y[d] {
			return false
		}
	}
	return true
}

// storedOnDisk lists the artifacts in the daemon's mirrors' folders.
func storedOnDisk(t testing.TB, d *daemon) []api.Digest {
	t.Helper()
	seen := map[api.Digest]bool{}
	for _, m := range d.mirrors {
		fans, _ := os.ReadDir(filepath.Join(m, "artifacts"))
		for _, f := range fans {
			files, _ := os.ReadDir(filepath.Join(m, "artifacts", f.Name()))
			for _, a := range files {
				if dg, err := api.ParseDigest(a.Name()); err == nil {
					seen[dg] = true
				}
			}
		}
	}
	var out []api.Digest
	for dg := range seen {
		out = append(out, dg)
	}
	return out
}

// testRepo writes a signed repository (zip, stored entries) with n
// artifacts of size bytes each into dir and returns its path, its root's
// path and the artifacts' digests.
func testRepo(t testing.TB, dir, version string, n int, size int64) (repo, root string, digests []api.Digest) {
	t.Helper()
	b := tuftest.NewBuilder(t)
	var arts []tuftest.Artifact
	for i := range n {
		name := fmt.Sprintf("artifact-%d.bin", i)
		data, dg := randomBlob(int(size), byte(100+i))
		b.AddTarget(name, data)
		arts = append(arts, tuftest.Artifact{Name: fmt.Sprintf("a%d", i), Version: version, Kind: "blob", Target: name})
		digests = append(digests, dg)
	}
	b.SetManifest(version, arts)
	repo, root = filepath.Join(dir, "repo-"+version+".zip"), filepath.Join(dir, "root.json")
	f, err := os.Create(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteZip(f, true); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(root, b.RootJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	return repo, root, digests
}

func uploadFile(t testing.TB, c *client.Client, path string) api.UploadResult {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	res, err := c.UploadRepo(context.Background(), filepath.Base(path), "", f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitRepoState long-polls the repository until it reaches state.
func waitRepoState(t testing.TB, c *client.Client, version, state string, within time.Duration) api.RepoProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		p, err := c.Repo(ctx, version, 10*time.Second)
		if err != nil {
			t.Fatalf("repository %s never %s: %v", version, state, err)
		}
		if p.State == state || (state == api.RepoDurable && p.State == api.RepoComplete) {
			return p
		}
	}
}

// TestE2E_UploadKilledLeavesNoTrace kills the coordinator at random points
// of an upload; after each restart there is no spool file, no artifact
// and no repository — until an upload completes, after which it is whole.
func TestE2E_UploadKilledLeavesNoTrace(t *testing.T) {
	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "1.0.0", 3, 8<<20)
	body, err := os.ReadFile(repo)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for round := range 5 {
		d := startDaemon(t, dir, "--trusted-root", root)
		done := make(chan error, 1)
		go func() {
			_, err := d.op.UploadRepo(ctx, "repo.zip", "", &slowReader{b: body, chunk: 1 << 20, pause: 5 * time.Millisecond}, int64(len(body)))
			done <- err
		}()
		time.Sleep(time.Duration(rng.Int64N(int64(250 * time.Millisecond))))
		d.kill(t)
		uploaded := <-done == nil
		d = startDaemon(t, dir, "--trusted-root", root)
		repos, err := d.op.Repos(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, list, _ := d.sled.ListArtifacts(ctx)
		for _, m := range d.mirrors {
			if ents, _ := os.ReadDir(filepath.Join(m, "tmp")); len(ents) > 0 {
				t.Fatalf("round %d: spool or temp files left: %v", round, ents)
			}
		}
		if len(repos) == 0 {
			if uploaded {
				t.Fatalf("round %d: the upload was acknowledged, the repository is gone", round)
			}
			waitUntil(t, 10*time.Second, "reconciled", func() bool {
				st, err := d.sled.Status(ctx)
				return err == nil && st.Reconciler.Passes > 0
			})
			if n := len(storedOnDisk(t, d)); n != 0 {
				t.Fatalf("round %d: no repository, but %d artifacts on disk", round, n)
			}
		} else {
			for _, dg := range digests {
				if list[dg] != 2 {
					t.Fatalf("round %d: repository recorded but artifact %s has %d copies", round, dg, list[dg])
				}
			}
			if err := d.op.DeleteRepo(ctx, "1.0.0"); err != nil {
				t.Fatal(err)
			}
			// Its artifacts leave with the reconciler's next pass.
			waitUntil(t, 10*time.Second, "artifacts deleted", func() bool { return len(storedOnDisk(t, d)) == 0 })
		}
		checkNothingPartial(t, d)
		d.stop(t)
	}
}

// rackOf starts n storage sleds and a coordinator that replicates to them.
func rackOf(t testing.TB, n int, root string, extra ...string) (coord *daemon, sleds []*daemon, ids []string) {
	t.Helper()
	args := []string{"--trusted-root", root, "--replication-period", "1h"}
	for i := range n {
		s := startDaemon(t, t.TempDir(), "--coordinator=false")
		sleds = append(sleds, s)
		id := fmt.Sprintf("sled%d", i)
		ids = append(ids, id)
		args = append(args, "--sled", fmt.Sprintf("control=%s,depot=%s,id=%s", s.sledURL, s.depotURL, id))
	}
	coord = startDaemon(t, t.TempDir(), append(args, extra...)...)
	return coord, sleds, ids
}

func TestE2E_RackReplicatesUploadAndDelete(t *testing.T) {
	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "2.0.0", 3, 1<<20)
	coord, sleds, _ := rackOf(t, 3, root, "--min-sled-replication", "3")
	ctx := context.Background()
	res := uploadFile(t, coord.op, repo)
	if res.Status != api.UploadInserted {
		t.Fatalf("upload = %+v", res)
	}
	p := waitRepoState(t, coord.op, "2.0.0", api.RepoComplete, 60*time.Second)
	if p.InService != 4 {
		t.Fatalf("progress = %+v", p)
	}
	for i, s := range sleds {
		_, list, err := s.sled.ListArtifacts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, dg := range digests {
			if list[dg] != 2 {
				t.Fatalf("sled %d lists %s with %d copies, want 2", i, dg, list[dg])
			}
		}
	}

	// Delete: every sled drops the artifacts (their reconcilers do it once
	// the new config arrives).
	if err := coord.op.DeleteRepo(ctx, "2.0.0"); err != nil {
		t.Fatal(err)
	}
	for i, s := range sleds {
		waitUntil(t, 30*time.Second, fmt.Sprintf("sled %d empty", i), func() bool {
			return len(storedOnDisk(t, s)) == 0
		})
	}
	// Dev mode: each change is recorded with the anonymous loopback caller.
	var got []string
	for _, r := range auditRecords(t, coord.op) {
		got = append(got, r.Action+" "+r.Target+" "+r.Actor)
	}
	if !slices.Contains(got, "repo.upload 2.0.0 anonymous (loopback)") || !slices.Contains(got, "repo.prune 2.0.0 anonymous (loopback)") {
		t.Errorf("audit log: %q", got)
	}
}

func TestE2E_SledKilledDuringReplicationConverges(t *testing.T) {
	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "3.0.0", 4, 4<<20)
	coord, sleds, _ := rackOf(t, 3, root)
	ctx := context.Background()
	victimDir := filepath.Dir(sleds[1].mirrors[0])
	victimAddr := strings.TrimPrefix(sleds[1].sledURL, "http://")
	victimDepot := strings.TrimPrefix(sleds[1].depotURL, "http://")
	uploadFile(t, coord.op, repo)
	time.Sleep(30 * time.Millisecond)
	sleds[1].kill(t)
	// Restart on the same ports (the coordinator knows them) and data.
	restarted := startDaemon(t, victimDir, "--coordinator=false", "--listen", victimAddr, "--depot-listen", victimDepot)
	if err := coord.op.ActivateReplication(ctx); err != nil {
		t.Fatal(err)
	}
	waitRepoState(t, coord.op, "3.0.0", api.RepoComplete, 60*time.Second)
	_, list, err := restarted.sled.ListArtifacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, dg := range digests {
		if list[dg] != 2 {
			t.Fatalf("restarted sled lists %s with %d copies", dg, list[dg])
		}
	}
	checkNothingPartial(t, restarted)
}

func TestE2E_ExpungedSledIsNotContacted(t *testing.T) {
	work := t.TempDir()
	repo, root, _ := testRepo(t, work, "4.0.0", 2, 1<<20)
	coord, sleds, ids := rackOf(t, 2, root)
	ctx := context.Background()
	if _, err := coord.op.ExpungeSled(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	uploadFile(t, coord.op, repo)
	waitRepoState(t, coord.op, "4.0.0", api.RepoComplete, 60*time.Second)
	if n := len(storedOnDisk(t, sleds[1])); n != 0 {
		t.Fatalf("expunged sled got %d artifacts", n)
	}
	if _, err := sleds[1].sled.GetConfig(ctx); !errors.Is(err, api.ErrNoConfig) {
		t.Fatalf("expunged sled was given a config: %v", err)
	}
	st, err := coord.op.ReplicationStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The start-up activation (generation 0) may have run before the
	// expunge; nothing since the upload may touch the sled.
	for _, r := range st.Recent {
		if r.Sled == ids[1] && r.Generation > 0 {
			t.Fatalf("expunged sled contacted: %+v", r)
		}
	}
}

func TestE2E_StaleCoordinatorCannotDelete(t *testing.T) {
	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "5.0.0", 2, 1<<20)
	coord, sleds, _ := rackOf(t, 1, root)
	ctx := context.Background()
	uploadFile(t, coord.op, repo)
	waitRepoState(t, coord.op, "5.0.0", api.RepoComplete, 60*time.Second)
	// A newer coordinator of the same catalog took the sled to generation
	// 50 with the same set.
	cur, err := sleds[0].sled.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sleds[0].sled.PutConfig(ctx, api.Config{CatalogID: cur.CatalogID, Generation: 50, Artifacts: digests}); err != nil {
		t.Fatal(err)
	}
	// The stale one deletes the repository (its generation 2 < 50).
	if err := coord.op.DeleteRepo(ctx, "5.0.0"); err != nil {
		t.Fatal(err)
	}
	var st api.ReplicationStatus
	waitUntil(t, 30*time.Second, "activation after delete", func() bool {
		var err error
		st, err = coord.op.ReplicationStatus(ctx, 0)
		return err == nil && st.Last != nil && st.Last.Generation == 2 && !st.Running
	})
	if !strings.Contains(st.Last.Error, "another coordinator is ahead") {
		t.Fatalf("last activation = %+v", st.Last)
	}
	if cfg, err := sleds[0].sled.GetConfig(ctx); err != nil || cfg.Generation != 50 {
		t.Fatalf("sled config = %+v, %v", cfg, err)
	}
	if n := len(storedOnDisk(t, sleds[0])); n != len(digests) {
		t.Fatalf("sled holds %d artifacts after a stale delete, want %d", n, len(digests))
	}
}

// lyingSled is a fake sled: it accepts any config, claims to hold every
// configured artifact, and its depot port serves wrong bytes of the right
// length. Honest sleds copying from it must refuse, and the coordinator
// must report it and converge from another source.
type lyingSled struct {
	control, depot *http.Server
	controlURL     string
	depotURL       string
	mu             sync.Mutex
	cfg            api.Config
	sizes          map[api.Digest]int64
}

func startLyingSled(t testing.TB, sizes map[api.Digest]int64) *lyingSled {
	t.Helper()
	l := &lyingSled{sizes: sizes}
	cl, dl := servertest.Listen(t), servertest.Listen(t)
	l.controlURL, l.depotURL = "http://"+cl.Addr().String(), "http://"+dl.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"version": "liar", "depot_url": l.depotURL,
			"mirrors": []map[string]any{{"path": "a", "healthy": true}, {"path": "b", "healthy": true}}})
	})
	mux.HandleFunc("GET /artifacts-config", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.cfg.Artifacts == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"request_id": "liar", "error_code": "NO_CONFIG", "message": "none"})
			return
		}
		json.NewEncoder(w).Encode(l.cfg)
	})
	mux.HandleFunc("PUT /artifacts-config", func(w http.ResponseWriter, r *http.Request) {
		var c api.Config
		json.NewDecoder(r.Body).Decode(&c)
		l.mu.Lock()
		l.cfg = c
		l.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /artifacts", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		list := map[string]int{}
		for _, d := range l.cfg.Artifacts {
			list[d.String()] = 2
		}
		g := l.cfg.Generation
		l.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"generation": g, "list": list})
	})
	dmux := http.NewServeMux()
	dmux.HandleFunc("GET /artifact/sha256/{sha}", func(w http.ResponseWriter, r *http.Request) {
		d, err := api.ParseDigest(r.PathValue("sha"))
		if err != nil || l.sizes[d] == 0 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(l.sizes[d], 10))
		io.Copy(w, io.LimitReader(zeroReader{}, l.sizes[d]))
	})
	l.control, l.depot = &http.Server{Handler: mux}, &http.Server{Handler: dmux}
	go l.control.Serve(cl)
	go l.depot.Serve(dl)
	t.Cleanup(func() { l.control.Close(); l.depot.Close() })
	return l
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestE2E_CorruptPeerReportedAndArtifactConverges(t *testing.T) {
	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "6.0.0", 6, 256<<10)
	sizes := map[api.Digest]int64{}
	for _, dg := range digests {
		sizes[dg] = 256 << 10
	}
	liar := startLyingSled(t, sizes)
	coord, sleds, _ := rackOf(t, 2, root, "--sled", "control="+liar.controlURL+",depot="+liar.depotURL+",id=liar")
	ctx := context.Background()
	uploadFile(t, coord.op, repo)
	waitRepoState(t, coord.op, "6.0.0", api.RepoComplete, 90*time.Second)
	for i, s := range sleds {
		checkNothingPartial(t, s)
		_, list, _ := s.sled.ListArtifacts(ctx)
		for _, dg := range digests {
			if list[dg] != 2 {
				t.Fatalf("sled %d: %s has %d copies", i, dg, list[dg])
			}
		}
	}
	st, err := coord.op.ReplicationStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	reported := 0
	for _, r := range st.Recent {
		if r.Op == api.OpCopy && r.Source == "liar" {
			if !strings.Contains(r.Error, "sha256") {
				t.Fatalf("copy from the liar: %+v, want a sha256 error", r)
			}
			reported++
		}
	}
	if reported == 0 {
		t.Fatal("the lying sled was never picked as a source; the test proved nothing")
	}
}

// TestE2E_UploadSagaKilledAtEachStep kills the coordinator with SIGKILL as
// the upload saga reaches each step, restarts it, and checks the outcome:
// before record the upload is undone (no spool, no artifacts, no
// repository); from record on the repository is there, whole, and stays.
func TestE2E_UploadSagaKilledAtEachStep(t *testing.T) {
	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "7.0.0", 3, 2<<20)
	ctx := context.Background()
	for _, c := range []struct {
		step     string
		recorded bool
	}{
		{depot.StepSpool, false},
		{depot.StepVerify, false},
		{depot.StepStage, false},
		{depot.StepRecorded, true},
	} {
		t.Run(c.step, func(t *testing.T) {
			dir := t.TempDir()
			d := startDaemonEnv(t, dir, []string{"DEPOTD_CRASH_AT_SAGA_STEP=" + c.step}, "--trusted-root", root)
			f, err := os.Open(repo)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			_, err = d.op.UploadRepo(ctx, "repo.zip", "", f, fi.Size())
			f.Close()
			if err == nil {
				t.Fatal("upload succeeded; the daemon should have died at step " + c.step)
			}
			d.wait(t, 10*time.Second)

			d = startDaemon(t, dir, "--trusted-root", root)
			repos, err := d.op.Repos(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range d.mirrors {
				if ents, _ := os.ReadDir(filepath.Join(m, "tmp")); len(ents) > 0 {
					t.Fatalf("temp or spool files left: %v", ents)
				}
			}
			waitUntil(t, 10*time.Second, "reconciled", func() bool {
				st, err := d.sled.Status(ctx)
				return err == nil && st.Reconciler.Passes > 0 && !st.Reconciler.Running
			})
			onDisk := storedOnDisk(t, d)
			if !c.recorded {
				if len(repos) != 0 || len(onDisk) != 0 {
					t.Fatalf("after a kill at %s: %d repositories, %d artifacts; want none", c.step, len(repos), len(onDisk))
				}
			} else {
				if len(repos) != 1 || !sameDigests(onDisk, digests) {
					t.Fatalf("after a kill at %s: %d repositories, %d artifacts; want the repository whole", c.step, len(repos), len(onDisk))
				}
				p := waitRepoState(t, d.op, "7.0.0", api.RepoComplete, 30*time.Second)
				if len(p.Artifacts) != len(digests) {
					t.Fatalf("progress = %+v", p)
				}
			}
			checkNothingPartial(t, d)
			// The same upload now goes through, once.
			res := uploadFile(t, d.op, repo)
			want := api.UploadInserted
			if c.recorded {
				want = api.UploadAlreadyExists
			}
			if res.Status != want {
				t.Fatalf("upload after restart = %s, want %s", res.Status, want)
			}
			d.stop(t)
		})
	}
}
