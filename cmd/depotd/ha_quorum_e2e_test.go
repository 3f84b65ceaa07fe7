package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"depot/server/api"
	"depot/server/client"
)

// TestHA_EtcdQuorum: with one of three etcd members down (the one that
// led), two coordinators take uploads and answer lists without an error;
// with two down, operator writes answer 503 CATALOG_UNAVAILABLE within a
// bound while the sled and depot APIs keep serving; once the members are
// back everything resumes and nothing is half-written.
func TestHA_EtcdQuorum(t *testing.T) {
	cl := haCluster(t)
	prefix := haPrefix(t)
	ctx := context.Background()
	repo1, root, d1 := testRepo(t, t.TempDir(), "3.1.0", 2, 1<<20+11)
	repo2, root2, d2 := testRepo(t, t.TempDir(), "3.2.0", 2, 1<<20+22)
	repo3, root3, d3 := testRepo(t, t.TempDir(), "3.3.0", 2, 1<<20+33)

	a := startHA(t, cl, prefix, "a", root, nil)
	b := startHA(t, cl, prefix, "b", root, nil)
	register(t, a.op, map[string]*daemon{"a": a.daemon, "b": b.daemon})
	for _, r := range []string{root2, root3} {
		doc, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.op.AddTrustRoot(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	uploadFile(t, a.op, repo1)
	waitComplete(t, "3.1.0", 60*time.Second, a, b)

	// One member down, the one that led: nothing an operator sees changes.
	var first int
	waitUntil(t, 10*time.Second, "an etcd leader", func() bool { first = cl.Leader(); return first >= 0 })
	cl.Stop(first)
	t0 := time.Now()
	if res := uploadFile(t, b.op, repo2); res.Status != api.UploadInserted {
		t.Fatalf("upload with 2 of 3 etcd members = %+v", res)
	}
	for _, n := range []*haNode{a, b} {
		if repos, err := n.op.Repos(ctx); err != nil || len(repos) != 2 {
			t.Fatalf("%s lists %d repositories with 2 of 3 etcd members: %v", n.id, len(repos), err)
		}
		if _, err := n.op.Sleds(ctx); err != nil {
			t.Fatalf("%s lists sleds with 2 of 3 etcd members: %v", n.id, err)
		}
	}
	waitComplete(t, "3.2.0", 60*time.Second, a, b)
	t.Logf("etcd leader (member %d) stopped: upload, lists and replication to complete in %v", first, time.Since(t0).Round(time.Millisecond))

	// Two members down: no quorum.
	second := (first + 1) % 3
	cl.Stop(second)
	refused := func(what string, op func() error) {
		t.Helper()
		t0 := time.Now()
		err := op()
		took := time.Since(t0)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != api.CodeCatalogUnavailable {
			t.Fatalf("%s without etcd quorum: %v, want 503 %s", what, err, api.CodeCatalogUnavailable)
		}
		if !strings.Contains(ae.Message, "quorum") || !strings.Contains(ae.Message, "nothing was changed") {
			t.Errorf("%s without etcd quorum: unclear message %q", what, ae.Message)
		}
		t.Logf("%s without etcd quorum: 503 %s in %v", what, ae.Code, took.Round(time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("%s without etcd quorum took %v to fail, want < 10s", what, took)
		}
	}
	body3, err := os.ReadFile(repo3)
	if err != nil {
		t.Fatal(err)
	}
	refused("upload on a", func() error {
		_, err := a.op.UploadRepo(ctx, "repo-3.3.0.zip", "", strings.NewReader(string(body3)), int64(len(body3)))
		return err
	})
	refused("delete on b", func() error { return b.op.DeleteRepo(ctx, "3.1.0") })
	refused("sled registration on a", func() error {
		_, err := a.op.PutSled(ctx, api.SledRecord{ID: "c", ControlURL: "http://127.0.0.1:9"})
		return err
	})
	// The sled and depot APIs serve from the sled alone.
	for _, n := range []*haNode{a, b} {
		_, list, err := n.sled.ListArtifacts(ctx)
		if err != nil {
			t.Fatalf("%s: GET /artifacts without etcd quorum: %v", n.id, err)
		}
		for _, dg := range append(append([]api.Digest{}, d1...), d2...) {
			if list[dg] != 2 {
				t.Fatalf("%s: GET /artifacts without etcd quorum lists %s with %d copies", n.id, dg, list[dg])
			}
			rc, size, err := n.depot.GetArtifact(ctx, dg)
			if err != nil {
				t.Fatalf("%s: GET artifact %s without etcd quorum: %v", n.id, dg, err)
			}
			h := sha256.New()
			got, err := io.Copy(h, rc)
			rc.Close()
			if err != nil || got != size || api.Digest(h.Sum(nil)) != dg {
				t.Fatalf("%s: artifact %s without etcd quorum: %d of %d bytes, %v", n.id, dg, got, size, err)
			}
		}
	}

	// Members back: writes resume.
	haRestartAll(t)
	back := time.Now()
	var res api.UploadResult
	for {
		res, err = b.op.UploadRepo(ctx, "repo-3.3.0.zip", "", strings.NewReader(string(body3)), int64(len(body3)))
		if err == nil {
			break
		}
		if apiCode(err) != api.CodeCatalogUnavailable || time.Since(back) > 30*time.Second {
			t.Fatalf("upload after etcd quorum returned (%v): %v", time.Since(back).Round(time.Millisecond), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("etcd members back: first upload accepted after %v", time.Since(back).Round(time.Millisecond))
	if res.Status != api.UploadInserted {
		t.Fatalf("upload after quorum returned = %+v (the refused upload must have recorded nothing)", res)
	}
	waitComplete(t, "3.3.0", 60*time.Second, a, b)
	t.Logf("etcd members back: replication complete after %v", time.Since(back).Round(time.Millisecond))
	leaderOf(t, 30*time.Second, a, b)

	// Nothing half-written: the repositories are the three accepted, every
	// saga finished, and each sled holds exactly the wanted set.
	cat := haCatalog(t, cl, prefix)
	repos, err := cat.Repos(t.Context())
	if err != nil || len(repos) != 3 {
		t.Fatalf("catalog holds %d repositories, want 3: %v", len(repos), err)
	}
	waitUntil(t, 20*time.Second, "every saga finished", func() bool {
		sagas, err := cat.Sagas(t.Context())
		if err != nil {
			return false
		}
		for _, s := range sagas {
			if !s.Finished() || s.Cleanup != "" {
				return false
			}
		}
		return true
	})
	_, want := wantedSet(t, cat)
	for _, dg := range append(append(append([]api.Digest{}, d1...), d2...), d3...) {
		if !want[dg] {
			t.Fatalf("artifact %s is not wanted", dg)
		}
	}
	for _, n := range []*haNode{a, b} {
		waitHolds(t, n.id, n.daemon, want, true, 20*time.Second)
		checkNothingPartial(t, n.daemon)
	}
}
