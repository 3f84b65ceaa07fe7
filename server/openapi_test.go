package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
	"depot/server/remote"
)

// TestOpenAPI_Conformance drives live daemons (a coordinator with metrics,
// two plain sleds, one of them registered with the coordinator) through
// every operation of the OpenAPI document, successes and error answers,
// with every request and answer (the coordinator's to its sleds and the
// copy jobs' to their peers included) checked against the document.
func TestOpenAPI_Conformance(t *testing.T) {
	t.Parallel()
	v, ct, hc := validating(t)
	ctx := context.Background()

	coord := newEnv(t, withCoordinator(), withMetrics(), withTransport(ct), withMinReplication(2),
		withMaxSize(1<<20), withMaxRepoSize(1<<20))
	b := newEnv(t, withTransport(ct), withSledOptions(depot.SledOptions{Peer: remote.Peer{HTTP: hc}, MaxConcurrentCopies: 1, MaxQueuedCopies: -1}))
	c := newEnv(t, withTransport(ct), withSledOptions(depot.SledOptions{Peer: remote.Peer{HTTP: hc}}))
	plain := newEnv(t, withTransport(ct))

	// vdo sends a hand-made request through the validator.
	vdo := func(method, url string, body io.Reader, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		return doWith(t, hc, method, url, body, hdr...)
	}
	want := func(what string, resp *http.Response, body []byte, status int) {
		t.Helper()
		if resp.StatusCode != status {
			t.Errorf("%s: %d %s, want %d", what, resp.StatusCode, body, status)
		}
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// --- sled API, on b (unmanaged, then managed) -----------------------
	data, d := blob(t, 64<<10)
	_, absent := blob(t, 1)
	_, err := b.sled.GetConfig(ctx) // 404 NO_CONFIG
	if !errors.Is(err, api.ErrNoConfig) {
		t.Fatalf("GetConfig: %v", err)
	}
	_, err = b.sled.PutArtifact(ctx, d, bytes.NewReader(data), int64(len(data)))
	must("put", err)
	_, err = b.sled.PutArtifact(ctx, absent, bytes.NewReader(data), int64(len(data))) // 400 HASH_MISMATCH
	if !errors.Is(err, api.ErrHashMismatch) {
		t.Fatalf("mismatched put: %v", err)
	}
	resp, body := vdo("PUT", b.sledURL+"/artifacts/XYZ", strings.NewReader("x")) // 400 INVALID_HASH
	want("put bad hash", resp, body, 400)
	for _, base := range []string{b.sledURL + "/artifacts/", b.depotURL + "/artifact/sha256/"} {
		for _, m := range []string{"GET", "HEAD"} {
			resp, body = vdo(m, base+d.String(), nil)
			want(m+" whole", resp, body, 200)
			resp, body = vdo(m, base+d.String(), nil, "Range", "bytes=0-99")
			want(m+" range", resp, body, 206)
			resp, body = vdo(m, base+d.String(), nil, "Range", "bytes=999999-")
			want(m+" range past the end", resp, body, 416)
			resp, body = vdo(m, base+d.String(), nil, "If-None-Match", `"`+d.String()+`"`)
			want(m+" If-None-Match", resp, body, 304)
			resp, body = vdo(m, base+absent.String(), nil)
			want(m+" absent", resp, body, 404)
			resp, body = vdo(m, base+"XYZ", nil)
			want(m+" bad hash", resp, body, 400)
		}
		resp, body = vdo("GET", base+d.String(), nil, "Range", "bytes=0-9,20-29")
		want("multi-range", resp, body, 206)
	}
	_, _, err = b.sled.ListArtifacts(ctx)
	must("list", err)
	resp, body = vdo("DELETE", b.sledURL+"/artifacts/XYZ", nil)
	want("delete bad hash", resp, body, 400)
	must("delete absent", b.sled.DeleteArtifact(ctx, absent))

	must("put config", b.sled.PutConfig(ctx, api.Config{Generation: 2, Artifacts: []api.Digest{d}}))
	_, err = b.sled.GetConfig(ctx)
	must("get config", err)
	err = b.sled.PutConfig(ctx, api.Config{Generation: 1})
	if !errors.Is(err, api.ErrConfigGeneration) {
		t.Fatalf("stale config: %v", err)
	}
	resp, body = vdo("PUT", b.sledURL+"/artifacts-config", strings.NewReader(`{"generation":3}`), "Content-Type", "application/json")
	want("config without artifacts", resp, body, 400)
	resp, body = vdo("PUT", b.sledURL+"/artifacts-config", strings.NewReader(`{"generation":3,"artifacts":["x"]}`), "Content-Type", "application/json")
	want("config with a bad hash", resp, body, 400)
	resp, body = vdo("PUT", b.sledURL+"/artifacts-config", strings.NewReader(`{"generation":3,"artifacts":[]}`+strings.Repeat(" ", 33<<20)), "Content-Type", "application/json")
	want("config over the limit", resp, body, 413)
	must("delete configured", func() error {
		if err := b.sled.DeleteArtifact(ctx, d); !errors.Is(err, api.ErrArtifactInConfig) {
			return errors.New("not ARTIFACT_IN_CONFIG: " + errString(err))
		}
		return nil
	}())
	_, err = b.sled.PutArtifact(ctx, d, bytes.NewReader(data), int64(len(data))) // 409 GENERATION
	if !errors.Is(err, api.ErrGeneration) {
		t.Fatalf("put without generation: %v", err)
	}
	_, err = b.sled.PutArtifactAt(ctx, absent, gen(2), strings.NewReader("x"), 1) // 400 NOT_IN_CONFIG
	if !errors.Is(err, api.ErrNotInConfig) {
		t.Fatalf("put outside the config: %v", err)
	}
	_, err = b.sled.PutArtifactAt(ctx, d, gen(2), bytes.NewReader(data), int64(len(data)))
	must("put at generation", err)
	_, err = b.sled.StartScrub(ctx)
	must("scrub", err)
	_, err = b.sled.Status(ctx)
	must("status", err)

	// Copies on b (limit 1), from the coordinator's depot port.
	peer := newHoldingPeer(t)
	_, held := peer.add(t, 1000)
	_, held2 := peer.add(t, 1000)
	must("config for copies", b.sled.PutConfig(ctx, api.Config{Generation: 3, Artifacts: []api.Digest{d, held, held2}}))
	must("copy", b.sled.CopyFromDepot(ctx, held, gen(3), peer.url))
	if err := b.sled.CopyFromDepot(ctx, held2, gen(3), peer.url); !errors.Is(err, api.ErrTooManyCopies) {
		t.Fatalf("copy over the limit: %v", err)
	}
	if err := b.sled.CopyFromDepot(ctx, held2, nil, peer.url); !errors.Is(err, api.ErrGeneration) {
		t.Fatalf("copy without generation: %v", err)
	}
	if err := b.sled.CopyFromDepot(ctx, held2, gen(3), "ftp://x"); !errors.Is(err, api.ErrInvalidDepotURL) {
		t.Fatalf("copy from a bad URL: %v", err)
	}
	resp, body = vdo("POST", b.sledURL+"/artifacts/"+held2.String()+"/copy-from-depot?generation=3", strings.NewReader(`{"depot_base_url":`), "Content-Type", "application/json")
	want("copy with a bad body", resp, body, 400)
	resp, body = vdo("POST", b.sledURL+"/artifacts/"+held2.String()+"/copy-from-depot?generation=3", strings.NewReader(`{"depot_base_url":"`+strings.Repeat("x", 70<<10)+`"}`), "Content-Type", "application/json")
	want("copy with a big body", resp, body, 413)
	_, err = b.sled.Copy(ctx, held, 50*time.Millisecond) // 200, still running
	must("copy job", err)
	peer.release()
	if job, err := b.sled.Copy(ctx, held, 10*time.Second); err != nil || job.State != api.CopySucceeded {
		t.Fatalf("copy job = %+v, %v", job, err)
	}
	_, err = b.sled.Copies(ctx)
	must("copies", err)
	if _, err := b.sled.Copy(ctx, absent, 0); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("copy job of an absent hash: %v", err)
	}
	resp, body = vdo("GET", b.sledURL+"/copies/"+held.String()+"?wait=forever", nil)
	want("copy job with a bad wait", resp, body, 400)
	resp, body = vdo("GET", b.sledURL+"/openapi.json", nil)
	want("openapi.json", resp, body, 200)

	// --- operator API ---------------------------------------------------
	zip, root, _ := testRepo(t, "1.0.0")
	zip2, root2, _ := testRepo(t, "1.0.0") // other keys, same version
	resp, body = vdo("PUT", coord.opURL+"/v1/system/update/repositories?file_name=r.zip", bytes.NewReader(zip))
	want("upload without a trusted root", resp, body, 400)
	resp, body = vdo("PUT", coord.opURL+"/v1/system/update/repositories?file_name=r.zip", bytes.NewReader(make([]byte, 2<<20)))
	want("upload over the limit", resp, body, 413)
	resp, body = vdo("POST", coord.opURL+"/v1/system/update/trust-roots", bytes.NewReader(root), "Content-Type", "application/json")
	want("add trust root", resp, body, 201)
	resp, body = vdo("POST", coord.opURL+"/v1/system/update/trust-roots", bytes.NewReader(root), "Content-Type", "application/json")
	want("add trust root again", resp, body, 201)
	if _, err := coord.op.AddTrustRoot(ctx, []byte(`{"signed":{},"signatures":[]}`)); !errors.Is(err, api.ErrTrustRootInvalid) {
		t.Fatalf("add a non-root: %v", err)
	}
	roots, err := coord.op.TrustRoots(ctx)
	must("trust roots", err)
	resp, body = vdo("PUT", coord.opURL+"/v1/system/update/repositories?file_name=r.zip", bytes.NewReader(zip))
	want("upload", resp, body, 200)
	_, err = coord.op.UploadRepo(ctx, "r.zip", "", bytes.NewReader(zip), int64(len(zip)))
	must("upload again", err)
	must("trust the other", func() error { _, err := coord.op.AddTrustRoot(ctx, root2); return err }())
	if _, err := coord.op.UploadRepo(ctx, "r2.zip", "", bytes.NewReader(zip2), int64(len(zip2))); !errors.Is(err, api.ErrRepositoryConflict) {
		t.Fatalf("conflicting upload: %v", err)
	}
	_, err = coord.op.Repos(ctx)
	must("repos", err)
	_, err = coord.op.Repo(ctx, "1.0.0", 0)
	must("repo", err)
	if _, err := coord.op.Repo(ctx, "9.9.9", 0); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("absent repo: %v", err)
	}
	resp, body = vdo("GET", coord.opURL+"/v1/system/update/repositories/1.0.0?wait=x", nil)
	want("repo with a bad wait", resp, body, 400)

	// Sleds: c joins, then replication (PUTs: min replication 2; copies).
	_, err = coord.op.PutSled(ctx, api.SledRecord{ID: "c", ControlURL: c.sledURL})
	must("put sled", err)
	_, err = coord.op.PutSled(ctx, api.SledRecord{ID: "b", ControlURL: b.sledURL, DepotURL: b.depotURL})
	must("put sled b", err)
	if _, err := coord.op.PutSled(ctx, api.SledRecord{ID: "x", ControlURL: "ftp://x"}); !errors.Is(err, api.ErrInvalidSled) {
		t.Fatalf("put bad sled: %v", err)
	}
	resp, body = vdo("PUT", coord.opURL+"/v1/sleds/x", strings.NewReader(`{"control_url":"http://x","depot_url":"`+strings.Repeat("x", 70<<10)+`"}`), "Content-Type", "application/json")
	want("put sled with a big body", resp, body, 413)
	_, err = coord.op.Sled(ctx, "c")
	must("get sled", err)
	if _, err := coord.op.Sled(ctx, "zz"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("absent sled: %v", err)
	}
	_, err = coord.op.ExpungeSled(ctx, "b")
	must("expunge b", err)
	if _, err := coord.op.ExpungeSled(ctx, "zz"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("expunge absent: %v", err)
	}
	if _, err := coord.op.ExpungeSled(ctx, depot.LocalSledID); !errors.Is(err, api.ErrInvalidSled) {
		t.Fatalf("expunge local: %v", err)
	}
	_, err = coord.op.Sleds(ctx)
	must("sleds", err)
	must("activate", coord.op.ActivateReplication(ctx))
	_, err = coord.op.ReplicationStatus(ctx, 0)
	must("replication status", err)
	go func() {
		time.Sleep(50 * time.Millisecond)
		for range 5 {
			if coord.rep.RunOnce(ctx).Converged {
				return
			}
		}
	}()
	_, err = coord.op.ReplicationStatus(ctx, 10*time.Second)
	must("replication status long-poll", err)
	p, err := coord.op.Repo(ctx, "1.0.0", 0)
	for i := 0; err == nil && p.State != api.RepoComplete && i < 50; i++ {
		p, err = coord.op.Repo(ctx, "1.0.0", 10*time.Second)
	}
	if err != nil || p.State != api.RepoComplete {
		t.Fatalf("progress = %+v, %v", p, err)
	}
	resp, body = vdo("GET", coord.opURL+"/v1/replication/status?wait=x", nil)
	want("replication status with a bad wait", resp, body, 400)
	_, err = coord.sled.Status(ctx)
	must("coordinator status", err)
	resp, body = vdo("GET", coord.sledURL+"/metrics", nil)
	want("metrics", resp, body, 200)

	// Teardown: repositories and roots go.
	must("delete repo", coord.op.DeleteRepo(ctx, "1.0.0"))
	if err := coord.op.DeleteRepo(ctx, "1.0.0"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("delete absent repo: %v", err)
	}
	_, err = coord.op.TrustRoot(ctx, roots[0].ID)
	must("get trust root", err)
	must("delete trust root", coord.op.DeleteTrustRoot(ctx, roots[0].ID))
	if err := coord.op.DeleteTrustRoot(ctx, roots[0].ID); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("delete absent root: %v", err)
	}
	resp, body = vdo("DELETE", coord.opURL+"/v1/system/update/trust-roots/nope", nil)
	want("delete root with a bad id", resp, body, 400)
	resp, body = vdo("POST", coord.opURL+"/v1/system/update/trust-roots", strings.NewReader("{"), "Content-Type", "application/json")
	want("add a root that is not JSON", resp, body, 400)
	resp, body = vdo("POST", coord.opURL+"/v1/system/update/trust-roots", bytes.NewReader(make([]byte, 1<<20+1)), "Content-Type", "application/json")
	want("add a root over the limit", resp, body, 413)

	// A daemon without the coordinator role (and without metrics).
	resp, body = vdo("GET", plain.sledURL+"/metrics", nil)
	want("metrics without metrics", resp, body, 404)
	for _, r := range operatorRequests {
		var body io.Reader
		var hdr []string
		if r.body != "" {
			body = strings.NewReader(r.body)
			if strings.HasPrefix(r.body, "{") {
				hdr = []string{"Content-Type", "application/json"}
			}
		}
		resp, rb := vdo(r.method, plain.sledURL+r.path, body, hdr...)
		want(r.method+" "+r.path+" without the role", resp, rb, 404)
		if resp.Header.Get(api.ErrorCodeHeader) != api.CodeNotCoordinator {
			t.Errorf("%s %s: code %q", r.method, r.path, resp.Header.Get(api.ErrorCodeHeader))
		}
	}

	// --- authentication: the first token ends dev mode -----------------
	page, err := coord.op.Audit(ctx, 0, 0, 0)
	must("audit", err)
	if _, err := coord.op.Audit(ctx, page.HeadSeq, 10, 50*time.Millisecond); err != nil {
		t.Fatalf("audit long-poll: %v", err)
	}
	resp, body = vdo("GET", coord.opURL+"/v1/audit?since=x", nil)
	want("audit with a bad since", resp, body, 400)
	admin, err := coord.op.CreateToken(ctx, "admin", "admin") // dev mode: open
	must("create the first token", err)
	resp, body = vdo("GET", coord.opURL+"/v1/audit", nil)
	want("audit without a token", resp, body, 401)
	resp, body = vdo("GET", coord.opURL+"/v1/audit", nil, "Authorization", "Bearer nope")
	want("audit with a wrong token", resp, body, 401)
	adminC := client.New(coord.opURL, hc)
	adminC.Token = admin.Secret
	viewer, err := adminC.CreateToken(ctx, "viewer", "viewer")
	must("create a viewer token", err)
	if _, err := adminC.CreateToken(ctx, "viewer", "viewer"); !errors.Is(err, api.ErrTokenExists) {
		t.Fatalf("create a token twice: %v", err)
	}
	resp, body = vdo("POST", coord.opURL+"/v1/tokens", strings.NewReader(`{"name":"x","role":"root"}`),
		"Content-Type", "application/json", "Authorization", "Bearer "+admin.Secret)
	want("create a token with a bad role", resp, body, 400)
	resp, body = vdo("POST", coord.opURL+"/v1/tokens", strings.NewReader(`{"name":"x","role":"viewer"}`),
		"Content-Type", "application/json", "Authorization", "Bearer "+viewer.Secret)
	want("create a token as a viewer", resp, body, 403)
	_, err = adminC.Tokens(ctx)
	must("tokens", err)
	must("revoke", adminC.RevokeToken(ctx, "viewer"))
	if err := adminC.RevokeToken(ctx, "viewer"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	limited := false
	for i := 0; i < 100 && !limited; i++ {
		resp, _ = vdo("GET", coord.opURL+"/v1/sleds", nil, "Authorization", "Bearer wrong")
		limited = resp.StatusCode == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("100 failed authentications in a row were never refused with 429")
	}

	for _, err := range ct.Errors() {
		t.Errorf("document mismatch: %v", err)
	}
	seen := ct.Seen()
	for _, op := range v.Operations() {
		if !slices.Contains(seen, op) {
			t.Errorf("operation %s was not exercised", op)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
