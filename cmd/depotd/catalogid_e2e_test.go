package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
)

// End-to-end tests of catalog identity: a second coordinator started by
// mistake on the same sleds (its own catalog, a higher generation) must not
// take a single artifact from them, before or after a sled lags behind.

// strayRepos uploads n repositories of its own to a coordinator, each
// with distinct artifacts, so its generation ends at n. The repositories
// are signed by roots of their own, passed with --trusted-root.
func strayRepos(t testing.TB, n int) (roots []string, repos []string) {
	t.Helper()
	for i := range n {
		dir := t.TempDir()
		repo, root, _ := testRepo(t, dir, fmt.Sprintf("9.%d.0", i), 2, 64<<10+int64(i)+7)
		roots, repos = append(roots, root), append(repos, repo)
	}
	return roots, repos
}

// activated returns the coordinator's replication status after one more
// activation than it had run when called has finished: it asks for one
// and waits (long-polls) for it.
func activated(t testing.TB, c *client.Client) api.ReplicationStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := c.ReplicationStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A running activation may have read the catalog before this call:
	// wait for the one after it.
	want := st.Activations + 1
	if st.Running {
		want++
	}
	if err := c.ActivateReplication(ctx); err != nil {
		t.Fatal(err)
	}
	// Short long-polls: an activation may end between two of them, and a
	// poll only answers at the next change.
	for st.Activations < want || st.Running {
		if st, err = c.ReplicationStatus(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("waiting for activation %d: %v", want, err)
		}
	}
	return st
}

// reached long-polls the repository until it is in state (or further).
func reached(t testing.TB, c *client.Client, version, state string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		p, err := c.RepoUntil(ctx, version, 10*time.Second, state)
		if err != nil {
			t.Fatalf("repository %s never %s: %v", version, state, err)
		}
		if p.State == state || p.State == api.RepoComplete {
			return
		}
	}
}

// checkServesCatalog checks that a sled's config comes from catalog id
// at generation gen and that it holds every digest on both mirrors.
func checkServesCatalog(t testing.TB, name string, s *daemon, id string, gen uint64, digests []api.Digest) {
	t.Helper()
	ctx := context.Background()
	cfg, err := s.sled.GetConfig(ctx)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if cfg.CatalogID != id || cfg.Generation != gen {
		t.Fatalf("%s serves catalog %s at generation %d, want %s at %d", name, cfg.CatalogID, cfg.Generation, id, gen)
	}
	_, list, err := s.sled.ListArtifacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := storedOnDisk(t, s)
	for _, d := range digests {
		if list[d] != 2 || !slices.Contains(onDisk, d) {
			t.Fatalf("%s lists %s with %d copies (on disk: %v); want 2", name, d, list[d], slices.Contains(onDisk, d))
		}
	}
}

// checkStrayRefused checks the stray coordinator's own report: its last
// activation wrote to no sled, and each of A's sleds is reported as
// serving A's catalog (CATALOG_MISMATCH). It also checks that the stray
// coordinator sent no config to any of them.
func checkStrayRefused(t testing.TB, st api.ReplicationStatus, ids []string, catalogA string) {
	t.Helper()
	if st.Last == nil || !strings.Contains(st.Last.Error, "CATALOG_MISMATCH") || !strings.Contains(st.Last.Error, "wrote to no sled") {
		t.Fatalf("stray coordinator's last activation = %+v, want CATALOG_MISMATCH and no writes", st.Last)
	}
	for _, id := range ids {
		var s *api.SledState
		for i := range st.Sleds {
			if st.Sleds[i].ID == id {
				s = &st.Sleds[i]
			}
		}
		if s == nil {
			t.Fatalf("stray coordinator does not report sled %s: %+v", id, st.Sleds)
		}
		if s.Conflict != depot.ConflictCatalog || s.CatalogID != catalogA {
			t.Fatalf("stray coordinator reports sled %s as %+v, want conflict %s with catalog %s", id, s, depot.ConflictCatalog, catalogA)
		}
	}
	for _, r := range st.Recent {
		if r.Op == api.OpPutConfig && r.Sled != depot.LocalSledID {
			t.Fatalf("stray coordinator sent a config to %s: %+v", r.Sled, r)
		}
	}
}

// sledArgs is the --sled flags naming the sleds with the given ids.
func sledArgs(sleds []*daemon, ids []string) []string {
	var args []string
	for i, s := range sleds {
		args = append(args, "--sled", fmt.Sprintf("control=%s,depot=%s,id=%s", s.sledURL, s.depotURL, ids[i]))
	}
	return args
}

// TestE2E_StrayCoordinatorCannotEmptyRack: coordinator B starts with its
// own catalog and A's sled list, and reaches A's generation + 1 with its
// own uploads. Every sled keeps everything A wants, B reports
// CATALOG_MISMATCH per sled and writes to none, a config from B's catalog
// sent straight to a sled is refused naming both catalogs, and A's
// repository stays complete.
func TestE2E_StrayCoordinatorCannotEmptyRack(t *testing.T) {
	ctx := context.Background()
	repo, root, digests := testRepo(t, t.TempDir(), "2.0.0", 3, 256<<10)
	a, sleds, ids := rackOf(t, 3, root, "--min-sled-replication", "3")
	uploadFile(t, a.op, repo)
	reached(t, a.op, "2.0.0", api.RepoComplete)
	stA := activated(t, a.op)
	catalogA, genA := stA.CatalogID, stA.Generation
	if !depot.ValidCatalogID(catalogA) || genA != 1 {
		t.Fatalf("A's catalog %q at generation %d", catalogA, genA)
	}

	roots, repos := strayRepos(t, int(genA)+1)
	args := append([]string{"--replication-period", "1h", "--min-sled-replication", "3"}, sledArgs(sleds, ids)...)
	for _, r := range roots {
		args = append(args, "--trusted-root", r)
	}
	b := startDaemon(t, t.TempDir(), args...)
	for _, r := range repos {
		uploadFile(t, b.op, r)
	}
	stB := activated(t, b.op)
	if stB.CatalogID == catalogA || stB.Generation != genA+1 {
		t.Fatalf("B's catalog %s at generation %d; A's %s at %d", stB.CatalogID, stB.Generation, catalogA, genA)
	}
	checkStrayRefused(t, stB, ids, catalogA)
	for i, s := range sleds {
		checkServesCatalog(t, ids[i], s, catalogA, genA, digests)
	}
	// B's own repositories are not counted on sleds it could not list.
	p, err := b.op.Repo(ctx, "9.0.0", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != api.RepoReplicating || len(p.UnknownSleds) != len(ids) {
		t.Fatalf("B's repository = %s with unknown sleds %v; want replicating with %v unknown", p.State, p.UnknownSleds, ids)
	}

	// A coordinator that does not read first (an older one, or a script)
	// is refused by the sled itself, and the message names both catalogs.
	err = sleds[0].sled.PutConfig(ctx, api.Config{CatalogID: stB.CatalogID, Generation: genA + 1})
	var ae *client.APIError
	if !errors.Is(err, api.ErrCatalogMismatch) || !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "CATALOG_MISMATCH" ||
		!strings.Contains(ae.Message, catalogA) || !strings.Contains(ae.Message, stB.CatalogID) {
		t.Fatalf("config from B's catalog sent to a sled: %v", err)
	}
	// So is a config that names no catalog (as omicron's would), however
	// high its generation.
	if err := sleds[1].sled.PutConfig(ctx, api.Config{Generation: genA + 100}); !errors.Is(err, api.ErrCatalogMismatch) {
		t.Fatalf("config without a catalog sent to a sled of A: %v", err)
	}
	for i, s := range sleds {
		checkServesCatalog(t, ids[i], s, catalogA, genA, digests)
	}

	// A's next activation sees every sled, fresh, holding everything.
	stA = activated(t, a.op)
	if stA.Last.Error != "" || !stA.Last.Converged {
		t.Fatalf("A's activation after B's = %+v", stA.Last)
	}
	if p, err := a.op.Repo(ctx, "2.0.0", 0); err != nil || p.State != api.RepoComplete {
		t.Fatalf("A's repository = %+v, %v; want complete", p, err)
	}
}

// TestE2E_LaggingSledIsNotRewritten: sled0 is down while A moves from g to
// g+2; A reports its repository as replicating again (sled0 unknown)
// within one activation. B, at g+1 in its own catalog, activates before
// and after sled0 returns (A is stopped meanwhile, so nothing else writes
// to it): sled0 keeps A's generation g and everything it held, the others
// A's g+2, and B reports CATALOG_MISMATCH for each. A, restarted, then
// brings sled0 to g+2 and every repository to complete.
func TestE2E_LaggingSledIsNotRewritten(t *testing.T) {
	ctx := context.Background()
	var repos, roots []string
	var wanted [][]api.Digest
	for i := range 3 {
		repo, root, digests := testRepo(t, t.TempDir(), fmt.Sprintf("1.%d.0", i), 3, 128<<10+int64(i))
		repos, roots, wanted = append(repos, repo), append(roots, root), append(wanted, digests)
	}
	// Every sled, the coordinator's own included, must hold everything:
	// with one sled down nothing can be durable.
	a, sleds, ids := rackOf(t, 3, roots[0], "--min-sled-replication", "4", "--trusted-root", roots[1], "--trusted-root", roots[2])
	aDir := filepath.Dir(a.mirrors[0])
	aArgs := append([]string{"--replication-period", "1h", "--min-sled-replication", "4"}, sledArgs(sleds, ids)...)
	for _, r := range roots {
		aArgs = append(aArgs, "--trusted-root", r)
	}
	uploadFile(t, a.op, repos[0])
	reached(t, a.op, "1.0.0", api.RepoComplete)
	g := activated(t, a.op).Generation

	// sled0 goes down; A's next activation cannot list it, so 1.0.0 is
	// replicating again within that one activation.
	lagDir := filepath.Dir(sleds[0].mirrors[0])
	lagAddr, lagDepot := strings.TrimPrefix(sleds[0].sledURL, "http://"), strings.TrimPrefix(sleds[0].depotURL, "http://")
	sleds[0].kill(t)
	activated(t, a.op)
	p, err := a.op.Repo(ctx, "1.0.0", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != api.RepoReplicating || !slices.Equal(p.UnknownSleds, []string{ids[0]}) {
		t.Fatalf("1.0.0 with sled0 down = %s, unknown %v; want replicating, unknown [%s]", p.State, p.UnknownSleds, ids[0])
	}
	uploadFile(t, a.op, repos[1])
	uploadFile(t, a.op, repos[2])
	stA := activated(t, a.op)
	if stA.Generation != g+2 {
		t.Fatalf("A at generation %d, want %d", stA.Generation, g+2)
	}
	catalogA := stA.CatalogID

	// B, at g+1 of its own catalog, with the same sled list.
	strayRoots, strayUploads := strayRepos(t, int(g)+1)
	args := append([]string{"--replication-period", "1h"}, sledArgs(sleds, ids)...)
	for _, r := range strayRoots {
		args = append(args, "--trusted-root", r)
	}
	b := startDaemon(t, t.TempDir(), args...)
	for _, r := range strayUploads {
		uploadFile(t, b.op, r)
	}
	stB := activated(t, b.op)
	if stB.Generation != g+1 {
		t.Fatalf("B at generation %d, want %d", stB.Generation, g+1)
	}
	checkStrayRefused(t, stB, ids[1:], catalogA)

	// A stops; sled0 returns, on its ports and data, still at A's
	// generation g. B activates: it must write to no sled, sled0 included.
	a.stop(t)
	lagging := startDaemon(t, lagDir, "--coordinator=false", "--listen", lagAddr, "--depot-listen", lagDepot)
	stB = activated(t, b.op)
	checkStrayRefused(t, stB, ids, catalogA)
	checkServesCatalog(t, "sled0", lagging, catalogA, g, wanted[0])
	all := slices.Concat(wanted...)
	for i, s := range sleds[1:] {
		checkServesCatalog(t, ids[i+1], s, catalogA, g+2, all)
	}

	// A, restarted, brings sled0 up to date; everything is complete.
	a = startDaemon(t, aDir, aArgs...)
	for i := range repos {
		reached(t, a.op, fmt.Sprintf("1.%d.0", i), api.RepoComplete)
	}
	checkServesCatalog(t, "sled0", lagging, catalogA, g+2, all)
	stA = activated(t, a.op)
	for _, s := range stA.Sleds {
		if s.Conflict != "" {
			t.Fatalf("A reports a conflict on %s: %+v", s.ID, s)
		}
	}
	checkNothingPartial(t, lagging)
}

// TestE2E_AdoptCatalogMovesASled: the admin move of a sled from catalog A
// to catalog B. A wrong --adopt-catalog-from stops depotd and changes
// nothing; the right one keeps every artifact, is logged, and B's next
// config takes the sled, while A (which expunged it) sees no conflict.
func TestE2E_AdoptCatalogMovesASled(t *testing.T) {
	ctx := context.Background()
	repo, root, digests := testRepo(t, t.TempDir(), "3.0.0", 2, 96<<10)
	a, sleds, ids := rackOf(t, 1, root)
	uploadFile(t, a.op, repo)
	reached(t, a.op, "3.0.0", api.RepoComplete)
	catalogA := activated(t, a.op).CatalogID

	roots, repos := strayRepos(t, 1)
	b := startDaemon(t, t.TempDir(), "--replication-period", "1h", "--trusted-root", roots[0])
	catalogB := activated(t, b.op).CatalogID

	if _, err := a.op.ExpungeSled(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(sleds[0].mirrors[0])
	addr, depotAddr := strings.TrimPrefix(sleds[0].sledURL, "http://"), strings.TrimPrefix(sleds[0].depotURL, "http://")
	sleds[0].stop(t)

	// The sled serves A, not the catalog named as the one to move from:
	// depotd refuses to start, and nothing changes.
	wrong := launch(t, dir, "--coordinator=false", "--adopt-catalog", catalogB, "--adopt-catalog-from", depot.NoCatalog)
	if code := wrong.wait(t, 15*time.Second); code != 1 || !strings.Contains(wrong.log.String(), "serves catalog "+catalogA) {
		t.Fatalf("adopt from the wrong catalog: exit %d\n%s", code, wrong.log)
	}

	s := startDaemon(t, dir, "--coordinator=false", "--listen", addr, "--depot-listen", depotAddr,
		"--adopt-catalog", catalogB, "--adopt-catalog-from", catalogA)
	if !strings.Contains(s.log.String(), "sled moved to another catalog by an admin") ||
		!strings.Contains(s.log.String(), catalogA) || !strings.Contains(s.log.String(), catalogB) {
		t.Fatalf("the move is not logged with both catalogs:\n%s", s.log)
	}
	checkServesCatalog(t, "adopted sled", s, catalogB, 0, digests)

	// B takes it with its first config; A, which expunged it, is not
	// bothered.
	if _, err := b.op.PutSled(ctx, api.SledRecord{ID: "moved", ControlURL: s.sledURL, DepotURL: s.depotURL}); err != nil {
		t.Fatal(err)
	}
	uploadFile(t, b.op, repos[0])
	reached(t, b.op, "9.0.0", api.RepoComplete)
	if cfg, err := s.sled.GetConfig(ctx); err != nil || cfg.CatalogID != catalogB || cfg.Generation != 1 {
		t.Fatalf("moved sled's config = %+v, %v", cfg, err)
	}
	if st := activated(t, a.op); st.Last.Error != "" {
		t.Fatalf("A after the move: %+v", st.Last)
	}
}
