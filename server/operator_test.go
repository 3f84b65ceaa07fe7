package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/tuf/tuftest"
)

// testRepo builds a signed repository of system version version with two
// random artifacts of about 40 KiB and returns the zip, its root and the
// artifacts' digests.
func testRepo(t testing.TB, version string) (zip, root []byte, arts []api.Digest) {
	t.Helper()
	b := tuftest.NewBuilder(t)
	var list []tuftest.Artifact
	for i, kind := range []string{"zone", "sp"} {
		data, d := blob(t, 40_000+i*1000)
		name := kind + "-" + version + ".bin"
		b.AddTarget(name, data)
		list = append(list, tuftest.Artifact{Name: kind, Version: version, Kind: kind, Target: name})
		arts = append(arts, d)
	}
	b.SetManifest(version, list)
	return b.Zip(), b.RootJSON(), arts
}

// putRepo uploads archive the way curl -T does: a raw PUT with a length
// and Expect: 100-continue.
func (e *env) putRepo(t testing.TB, query string, archive []byte) (*http.Response, []byte) {
	t.Helper()
	return do(t, "PUT", e.opURL+"/v1/system/update/repositories?"+query, bytes.NewReader(archive), "Expect", "100-continue")
}

func (e *env) trust(t testing.TB, root []byte) api.TrustRoot {
	t.Helper()
	tr, err := e.op.AddTrustRoot(context.Background(), root)
	if err != nil {
		t.Fatalf("add trust root: %v", err)
	}
	return tr
}

func TestOperator_UploadRepo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	zip, root, arts := testRepo(t, "1.0.0")

	// No trusted root yet: refused, naming the check.
	resp, body := e.putRepo(t, "file_name=repo.zip", zip)
	eb := wantError(t, resp, body, 400, "REPOSITORY_INVALID")
	if !strings.Contains(eb.Message, "root") || !strings.Contains(eb.Message, "trust-roots") {
		t.Errorf("message %q does not name the failed check and the fix", eb.Message)
	}
	e.checkMirrors(t) // nothing staged, no spool left

	// Trust roots: 201, and 201 with the same record for the same document.
	resp, body = do(t, "POST", e.opURL+"/v1/system/update/trust-roots", bytes.NewReader(root))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("add trust root: %d %s", resp.StatusCode, body)
	}
	var tr api.TrustRoot
	if err := json.Unmarshal(body, &tr); err != nil || tr.Source != "api" || len(tr.ID) != 36 || len(tr.SHA256) != 64 {
		t.Fatalf("trust root = %+v, %v", tr, err)
	}
	resp, body = do(t, "POST", e.opURL+"/v1/system/update/trust-roots", bytes.NewReader(root))
	var dup api.TrustRoot
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &dup) != nil || dup.ID != tr.ID {
		t.Fatalf("add the same trust root: %d %s", resp.StatusCode, body)
	}

	// Upload: inserted, then already_exists.
	resp, body = e.putRepo(t, "file_name=repo.zip", zip)
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var res api.UploadResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != api.UploadInserted || res.Repo.SystemVersion != "1.0.0" || res.Repo.FileName != "repo.zip" ||
		len(res.Repo.Artifacts) != 2 || res.Repo.Hash != api.Digest(sha256sum(zip)) {
		t.Fatalf("upload result = %+v", res)
	}
	again, err := e.op.UploadRepo(ctx, "again.zip", "", bytes.NewReader(zip), int64(len(zip)))
	if err != nil || again.Status != api.UploadAlreadyExists || again.Repo.FileName != "repo.zip" {
		t.Fatalf("second upload = %+v, %v", again, err)
	}
	e.checkMirrors(t, arts...)
	cfg, err := e.sled.GetConfig(ctx)
	if err != nil || cfg.Generation != 1 || len(cfg.Artifacts) != 2 {
		t.Fatalf("local config = %+v, %v", cfg, err)
	}

	// List, get, delete.
	repos, err := e.op.Repos(ctx)
	if err != nil || len(repos) != 1 || repos[0].SystemVersion != "1.0.0" {
		t.Fatalf("repos = %+v, %v", repos, err)
	}
	p, err := e.op.Repo(ctx, "1.0.0", 0)
	if err != nil || p.State != api.RepoReplicating || len(p.Artifacts) != 2 || p.Artifacts[0].Sleds == nil {
		t.Fatalf("progress before replication = %+v, %v", p, err)
	}
	if _, err := e.op.Repo(ctx, "9.9.9", 0); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Repo of an unknown version: %v", err)
	}
	if err := e.op.DeleteRepo(ctx, "9.9.9"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("DeleteRepo of an unknown version: %v", err)
	}
	resp, body = do(t, "GET", e.opURL+"/v1/system/update/repositories/9.9.9", nil)
	eb = wantError(t, resp, body, 404, "NOT_FOUND")
	if !strings.Contains(eb.Message, "repository") || !strings.Contains(eb.Message, "9.9.9") {
		t.Errorf("NOT_FOUND message %q is not specific", eb.Message)
	}
	if err := e.op.DeleteRepo(ctx, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if repos, err := e.op.Repos(ctx); err != nil || len(repos) != 0 {
		t.Fatalf("repos after delete = %+v, %v", repos, err)
	}
	if _, body := do(t, "GET", e.opURL+"/v1/system/update/repositories", nil); strings.TrimSpace(string(body)) != `{"items":[],"next_page":null}` {
		t.Errorf("empty list = %s", body)
	}
	// The local sled drops the artifacts with the next generation.
	waitUntil(t, func() bool {
		_, list, err := e.sled.ListArtifacts(ctx)
		return err == nil && len(list) == 0
	})
	e.waitReconciled(t, 2)
	e.checkMirrors(t)
}

func TestOperator_UploadRepo_Refused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator(), withMaxRepoSize(64<<10))
	zip, root, _ := testRepo(t, "2.0.0")
	e.trust(t, root)
	if len(zip) <= 64<<10 {
		t.Fatalf("test repository is only %d bytes", len(zip))
	}
	// Over the limit, declared: refused before any of it is read.
	resp, body := e.putRepo(t, "file_name=big.zip", zip)
	eb := wantError(t, resp, body, 413, "TOO_LARGE")
	if !strings.Contains(eb.Message, "65536") || !strings.Contains(eb.Message, "--max-repo-size") {
		t.Errorf("message %q does not name the limit", eb.Message)
	}
	// Over the limit, chunked: refused while spooling.
	_, err := e.op.UploadRepo(context.Background(), "big.zip", "", bytes.NewReader(zip), -1)
	if !errors.Is(err, api.ErrTooLarge) {
		t.Fatalf("chunked upload over the limit: %v", err)
	}
	// No file name.
	resp, body = e.putRepo(t, "", []byte("x"))
	wantError(t, resp, body, 400, "BAD_REQUEST")
	// Not an archive.
	resp, body = e.putRepo(t, "file_name=junk.zip", bytes.Repeat([]byte("junk"), 100))
	eb = wantError(t, resp, body, 400, "REPOSITORY_INVALID")
	if !strings.HasPrefix(eb.Message, "repository is invalid: archive") {
		t.Errorf("message %q does not name the check", eb.Message)
	}
	// Truncated: the connection ends before Content-Length.
	conn, br := raw(t, strings.TrimPrefix(e.opURL, "http://"), fmt.Sprintf("PUT /v1/system/update/repositories?file_name=cut.zip HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 5000), []byte("PK"))
	conn.(interface{ CloseWrite() error }).CloseWrite()
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a truncated upload: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	wantError(t, resp, body, 400, "TRUNCATED_BODY")
	if repos, err := e.op.Repos(context.Background()); err != nil || len(repos) != 0 {
		t.Fatalf("repos = %+v, %v", repos, err)
	}
	e.checkMirrors(t) // nothing staged, no spool left
}

func TestOperator_UploadRepo_Conflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator())
	zip1, root1, _ := testRepo(t, "3.0.0")
	zip2, root2, _ := testRepo(t, "3.0.0")
	e.trust(t, root1)
	e.trust(t, root2)
	if _, err := e.op.UploadRepo(context.Background(), "a.zip", "", bytes.NewReader(zip1), int64(len(zip1))); err != nil {
		t.Fatal(err)
	}
	resp, body := e.putRepo(t, "file_name=b.zip", zip2)
	eb := wantError(t, resp, body, 409, "REPOSITORY_CONFLICT")
	if !strings.Contains(eb.Message, "3.0.0") {
		t.Errorf("message %q does not name the system version", eb.Message)
	}
}

func TestOperator_TrustRoots(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	_, root, _ := testRepo(t, "1.0.0")
	if roots, err := e.op.TrustRoots(ctx); err != nil || len(roots) != 0 {
		t.Fatalf("roots = %+v, %v", roots, err)
	}
	tr := e.trust(t, root)
	roots, err := e.op.TrustRoots(ctx)
	if err != nil || len(roots) != 1 || roots[0].ID != tr.ID || !json.Valid(roots[0].Root) {
		t.Fatalf("roots = %+v, %v", roots, err)
	}

	resp, body := do(t, "POST", e.opURL+"/v1/system/update/trust-roots", strings.NewReader("{not json"))
	wantError(t, resp, body, 400, "BAD_REQUEST")
	resp, body = do(t, "POST", e.opURL+"/v1/system/update/trust-roots", strings.NewReader(`{"signed":{},"signatures":[]}`))
	eb := wantError(t, resp, body, 400, "TRUST_ROOT_INVALID")
	if !strings.Contains(eb.Message, "root") {
		t.Errorf("message %q", eb.Message)
	}
	if _, err := e.op.AddTrustRoot(ctx, []byte(`{}`)); !errors.Is(err, api.ErrTrustRootInvalid) {
		t.Fatalf("client add of a non-root: %v", err)
	}
	resp, body = do(t, "POST", e.opURL+"/v1/system/update/trust-roots", bytes.NewReader(make([]byte, 1<<20+1)))
	wantError(t, resp, body, 413, "TOO_LARGE")

	got, err := e.op.TrustRoot(ctx, strings.ToUpper(tr.ID))
	if err != nil || got.ID != tr.ID || got.SHA256 != tr.SHA256 || !json.Valid(got.Root) {
		t.Fatalf("get by id = %+v, %v", got, err)
	}
	for _, bad := range []string{"nope", tr.SHA256, tr.ID[:35] + "g"} {
		resp, body = do(t, "DELETE", e.opURL+"/v1/system/update/trust-roots/"+bad, nil)
		wantError(t, resp, body, 400, "BAD_REQUEST")
		resp, body = do(t, "GET", e.opURL+"/v1/system/update/trust-roots/"+bad, nil)
		wantError(t, resp, body, 400, "BAD_REQUEST")
	}
	const unknown = "3f2b9c1e-8d4a-4e1b-9f0a-6c2d7e8f9a0b"
	if err := e.op.DeleteTrustRoot(ctx, unknown); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("delete of an unknown root: %v", err)
	}
	if _, err := e.op.TrustRoot(ctx, unknown); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get of an unknown root: %v", err)
	}
	if err := e.op.DeleteTrustRoot(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	if roots, err := e.op.TrustRoots(ctx); err != nil || len(roots) != 0 {
		t.Fatalf("roots after delete = %+v, %v", roots, err)
	}
}

func TestOperator_Repo_LongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	zip, root, _ := testRepo(t, "4.0.0")
	e.trust(t, root)
	if _, err := e.op.UploadRepo(ctx, "r.zip", "", bytes.NewReader(zip), int64(len(zip))); err != nil {
		t.Fatal(err)
	}
	done := make(chan depot.Activation, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		done <- e.rep.RunOnce(ctx)
	}()
	start := time.Now()
	p, err := e.op.Repo(ctx, "4.0.0", 30*time.Second)
	took := time.Since(start)
	if err != nil || p.State != api.RepoComplete || p.InService != 1 || len(p.Artifacts[0].Sleds) != 1 {
		t.Fatalf("progress = %+v, %v", p, err)
	}
	if took < 50*time.Millisecond || took > 5*time.Second {
		t.Fatalf("long-poll answered after %v; want right after the activation (~100ms)", took)
	}
	t.Logf("long-poll answered after %v", took)
	if act := <-done; !act.Converged {
		t.Fatalf("activation = %+v", act)
	}
	// Nothing changes any more: the wait runs out.
	start = time.Now()
	p, err = e.op.Repo(ctx, "4.0.0", 300*time.Millisecond)
	if err != nil || p.State != api.RepoComplete || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("idle long-poll = %+v, %v after %v", p, err, time.Since(start))
	}
	// Waiting for a state already reached answers at once, not at the end
	// of the wait (the state may have changed between two polls).
	start = time.Now()
	p, err = e.op.RepoUntil(ctx, "4.0.0", 30*time.Second, api.RepoDurable)
	if err != nil || p.State != api.RepoComplete || time.Since(start) > 5*time.Second {
		t.Fatalf("until=durable on a complete repository = %+v, %v after %v", p, err, time.Since(start))
	}
	resp, body := do(t, "GET", e.opURL+"/v1/system/update/repositories/4.0.0?wait=-1s", nil)
	wantError(t, resp, body, 400, "BAD_REQUEST")
	resp, body = do(t, "GET", e.opURL+"/v1/system/update/repositories/4.0.0?wait=1s&until=done", nil)
	wantError(t, resp, body, 400, "BAD_REQUEST")
}

func TestOperator_Sleds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	if sleds, err := e.op.Sleds(ctx); err != nil || len(sleds) != 0 {
		t.Fatalf("sleds = %+v, %v", sleds, err)
	}
	rec, err := e.op.PutSled(ctx, api.SledRecord{ID: "b", ControlURL: "http://127.0.0.1:1/", DepotURL: "http://127.0.0.1:2"})
	if err != nil || rec.ID != "b" || rec.State != api.SledInService || rec.ControlURL != "http://127.0.0.1:1" || rec.Added.IsZero() {
		t.Fatalf("put sled = %+v, %v", rec, err)
	}
	// Changing the URLs keeps the record.
	rec2, err := e.op.PutSled(ctx, api.SledRecord{ID: "b", ControlURL: "http://127.0.0.1:3"})
	if err != nil || !rec2.Added.Equal(rec.Added) || rec2.DepotURL != "" {
		t.Fatalf("update sled = %+v, %v", rec2, err)
	}
	got, err := e.op.Sled(ctx, "b")
	if err != nil || got.ControlURL != "http://127.0.0.1:3" {
		t.Fatalf("get sled = %+v, %v", got, err)
	}
	if _, err := e.op.Sled(ctx, "zz"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get unknown sled: %v", err)
	}
	for _, c := range []struct{ id, body string }{
		{"c", `{"control_url":"ftp://x"}`},
		{"c", `{"control_url":""}`},
		{"local", `{"control_url":"http://127.0.0.1:1"}`},
	} {
		resp, body := do(t, "PUT", e.opURL+"/v1/sleds/"+c.id, strings.NewReader(c.body))
		wantError(t, resp, body, 400, "INVALID_SLED")
	}
	resp, body := do(t, "PUT", e.opURL+"/v1/sleds/c", strings.NewReader(`{"control_url":`))
	wantError(t, resp, body, 400, "BAD_REQUEST")
	sleds, err := e.op.Sleds(ctx)
	if err != nil || len(sleds) != 1 {
		t.Fatalf("sleds = %+v, %v", sleds, err)
	}

	gone, err := e.op.ExpungeSled(ctx, "b")
	if err != nil || gone.State != api.SledExpunged {
		t.Fatalf("expunge = %+v, %v", gone, err)
	}
	if _, err := e.op.PutSled(ctx, api.SledRecord{ID: "b", ControlURL: "http://127.0.0.1:1"}); !errors.Is(err, api.ErrInvalidSled) {
		t.Fatalf("bringing an expunged sled back: %v", err)
	}
	if _, err := e.op.ExpungeSled(ctx, "zz"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("expunge unknown: %v", err)
	}
	resp, body = do(t, "DELETE", e.opURL+"/v1/sleds/local", nil)
	wantError(t, resp, body, 400, "INVALID_SLED")
	// Ids with reserved characters travel escaped.
	if _, err := e.op.Sled(ctx, "a/b c"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get escaped id: %v", err)
	}
}

// TestOperator_Replication drives a real remote sled over HTTP: the
// coordinator PUTs (min replication 2) through NewSledClient, and a copy
// job fetches through Peer from the coordinator's depot port.
func TestOperator_Replication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator())
	b := newEnv(t)
	c := newEnv(t)
	ctx := context.Background()

	st, err := e.op.ReplicationStatus(ctx, 0)
	if err != nil || st.Activations != 0 || st.Last != nil || st.Sleds == nil || st.Recent == nil {
		t.Fatalf("status before any activation = %+v, %v", st, err)
	}
	if err := e.op.ActivateReplication(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*env{b, c} {
		if _, err := e.op.PutSled(ctx, api.SledRecord{ID: strings.TrimPrefix(s.sledURL, "http://127.0.0.1:"), ControlURL: s.sledURL}); err != nil {
			t.Fatal(err)
		}
	}
	zip, root, arts := testRepo(t, "5.0.0")
	e.trust(t, root)
	if _, err := e.op.UploadRepo(ctx, "r.zip", "", bytes.NewReader(zip), int64(len(zip))); err != nil {
		t.Fatal(err)
	}

	// The status long-poll answers at the first change.
	go func() {
		time.Sleep(100 * time.Millisecond)
		for range 5 {
			if e.rep.RunOnce(ctx).Converged {
				return
			}
		}
	}()
	start := time.Now()
	st, err = e.op.ReplicationStatus(ctx, 30*time.Second)
	if err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("status long-poll = %v after %v", err, time.Since(start))
	}
	p, err := e.op.Repo(ctx, "5.0.0", 0)
	for i := 0; err == nil && p.State != api.RepoComplete && i < 50; i++ {
		p, err = e.op.Repo(ctx, "5.0.0", 10*time.Second)
	}
	if err != nil || p.State != api.RepoComplete || p.InService != 3 {
		t.Fatalf("progress = %+v, %v", p, err)
	}
	for _, s := range []*env{b, c} {
		s.checkMirrors(t, arts...)
		cfg, err := s.sled.GetConfig(ctx)
		if err != nil || cfg.Generation != 1 {
			t.Fatalf("remote config = %+v, %v", cfg, err)
		}
	}
	st, err = e.op.ReplicationStatus(ctx, 0)
	if err != nil || st.Generation != 1 || st.Activations < 1 || len(st.Sleds) != 3 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if n := st.Lifetime[api.OpCopy].OK + st.Lifetime[api.OpPut].OK; n != int64(2*len(arts)) {
		t.Fatalf("puts+copies = %d, want %d: %+v", n, 2*len(arts), st.Recent)
	}
	if st.Lifetime[api.OpCopy].Err+st.Lifetime[api.OpPut].Err != 0 {
		t.Fatalf("replication errors: %+v", st.Recent)
	}
}

// TestOperator_NotCoordinator: a daemon without the coordinator role
// answers every operator route with 404 NOT_COORDINATOR.
func TestOperator_NotCoordinator(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The long-polls must not wait either, and unknown /v1 paths say the same.
	reqs := append(slices.Clone(operatorRequests),
		operatorRequest{"GET", "/v1/system/update/repositories/1.0.0?wait=1m", ""},
		operatorRequest{"GET", "/v1/replication/status?wait=1m", ""},
		operatorRequest{"GET", "/v1/no-such-route", ""},
	)
	for _, r := range reqs {
		start := time.Now()
		resp, body := do(t, r.method, e.sledURL+r.path, strings.NewReader(r.body))
		eb := wantError(t, resp, body, 404, "NOT_COORDINATOR")
		if !strings.Contains(eb.Message, "--coordinator=false") {
			t.Errorf("%s %s: message %q", r.method, r.path, eb.Message)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s %s took %v", r.method, r.path, time.Since(start))
		}
	}
	if _, err := e.op.Repos(context.Background()); !errors.Is(err, api.ErrNotCoordinator) {
		t.Fatalf("client: %v", err)
	}
	if _, err := e.op.UploadRepo(context.Background(), "r.zip", "", strings.NewReader("zip"), 3); !errors.Is(err, api.ErrNotCoordinator) {
		t.Fatalf("client upload: %v", err)
	}
}
