package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/depot/auditchain"
	"depot/depot/authtoken"
	"depot/server/api"
	"depot/server/client"
	"depot/server/openapi/openapitest"
	"depot/tuf/tuftest"
)

func withAuthFailureRate(r float64) envOpt {
	return func(c *envConfig) { c.server.AuthFailureRate = r }
}

// routeCase is one operator operation in TestAuth_RouteTable: the role it
// needs, its status when allowed, and prepare, which makes what the call
// needs and returns the request and a check of its effect (nil: a read).
type routeCase struct {
	role    depot.Role
	status  int
	prepare func(t *testing.T, n int) (path string, body []byte, effect func() bool)
}

func auditSince(t testing.TB, cat *depot.Catalog, since uint64) []api.AuditRecord {
	t.Helper()
	recs, _, err := cat.Audit(t.Context(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]api.AuditRecord, len(recs))
	for i, r := range recs {
		if err := json.Unmarshal(r.Line, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func auditHead(t testing.TB, cat *depot.Catalog) uint64 {
	t.Helper()
	_, head, err := cat.Audit(t.Context(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return head
}

// TestAuth_RouteTable: every operator operation of the OpenAPI document
// (so a new route cannot escape) × every kind of caller gets the status
// its role allows; its effect happens only when allowed; and the audit log
// holds the refusal, or the change with the caller as actor.
func TestAuth_RouteTable(t *testing.T) {
	e := newEnv(t, withCoordinator(), withAuthFailureRate(1e6))
	ctx := context.Background()
	cat := e.coord.Catalog()
	secrets := map[depot.Role]string{}
	for _, r := range []depot.Role{depot.RoleViewer, depot.RoleOperator, depot.RoleAdmin} {
		s, _, err := cat.CreateToken(ctx, r.String(), r, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		secrets[r] = s
	}
	revoked, _, err := cat.CreateToken(ctx, "gone", depot.RoleAdmin, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.RevokeToken(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	identities := []struct {
		name, header string
		role         depot.Role
	}{
		{"no token", "", depot.RoleNone},
		{"wrong token", "Bearer " + authtoken.NewSecret(), depot.RoleNone},
		{"revoked token", "Bearer " + revoked, depot.RoleNone},
		{"viewer", "Bearer " + secrets[depot.RoleViewer], depot.RoleViewer},
		{"operator", "Bearer " + secrets[depot.RoleOperator], depot.RoleOperator},
		{"admin", "Bearer " + secrets[depot.RoleAdmin], depot.RoleAdmin},
	}

	upload := func(t *testing.T, version string) {
		zip, root, _ := testRepo(t, version)
		if _, _, err := e.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := e.coord.Upload(ctx, "r.zip", "", bytes.NewReader(zip), int64(len(zip)), nil); err != nil {
			t.Fatal(err)
		}
	}
	upload(t, "1.0.0")
	if _, err := cat.PutSled(ctx, depot.SledRecord{ID: "s0", ControlURL: "http://127.0.0.1:1"}, nil); err != nil {
		t.Fatal(err)
	}
	read := func(path string) func(*testing.T, int) (string, []byte, func() bool) {
		return func(*testing.T, int) (string, []byte, func() bool) { return path, nil, nil }
	}
	activations := func() int {
		n := 0
		for _, r := range auditSince(t, cat, 0) {
			if r.Action == "replication.activate" && r.Outcome.Status == http.StatusAccepted {
				n++
			}
		}
		return n
	}
	cases := map[string]routeCase{
		"system_update_repository_upload": {depot.RoleOperator, 200, func(t *testing.T, n int) (string, []byte, func() bool) {
			v := fmt.Sprintf("2.%d.0", n)
			zip, root, _ := testRepo(t, v)
			if _, _, err := e.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
				t.Fatal(err)
			}
			return "/v1/system/update/repositories?file_name=r.zip", zip, func() bool { _, err := cat.Repo(ctx, v); return err == nil }
		}},
		"system_update_repository_list": {depot.RoleViewer, 200, read("/v1/system/update/repositories")},
		"system_update_repository_view": {depot.RoleViewer, 200, read("/v1/system/update/repositories/1.0.0")},
		"system_update_delete_repository": {depot.RoleOperator, 204, func(t *testing.T, n int) (string, []byte, func() bool) {
			v := fmt.Sprintf("3.%d.0", n)
			upload(t, v)
			return "/v1/system/update/repositories/" + v, nil, func() bool {
				_, err := cat.Repo(ctx, v)
				return errors.Is(err, depot.ErrRepoNotFound)
			}
		}},
		"system_update_trust_root_create": {depot.RoleAdmin, 201, func(t *testing.T, n int) (string, []byte, func() bool) {
			root := tuftest.NewBuilder(t).RootJSON()
			return "/v1/system/update/trust-roots", root, func() bool {
				roots, _ := cat.TrustRoots(ctx)
				return slices.ContainsFunc(roots, func(r depot.TrustRoot) bool { return bytes.Equal(r.Root, root) })
			}
		}},
		"system_update_trust_root_list": {depot.RoleViewer, 200, read("/v1/system/update/trust-roots")},
		"system_update_trust_root_view": {depot.RoleViewer, 200, func(t *testing.T, n int) (string, []byte, func() bool) {
			tr, _, err := e.coord.AddTrustRoot(t.Context(), tuftest.NewBuilder(t).RootJSON(), "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			return "/v1/system/update/trust-roots/" + tr.ID, nil, nil
		}},
		"system_update_trust_root_delete": {depot.RoleAdmin, 204, func(t *testing.T, n int) (string, []byte, func() bool) {
			tr, _, err := e.coord.AddTrustRoot(t.Context(), tuftest.NewBuilder(t).RootJSON(), "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			return "/v1/system/update/trust-roots/" + tr.ID, nil, func() bool {
				roots, _ := cat.TrustRoots(ctx)
				return !slices.ContainsFunc(roots, func(r depot.TrustRoot) bool { return r.ID == tr.ID })
			}
		}},
		"sled_list": {depot.RoleViewer, 200, read("/v1/sleds")},
		"sled_view": {depot.RoleViewer, 200, read("/v1/sleds/s0")},
		"sled_put": {depot.RoleOperator, 200, func(t *testing.T, n int) (string, []byte, func() bool) {
			id := fmt.Sprintf("p%d", n)
			return "/v1/sleds/" + id, []byte(`{"control_url":"http://127.0.0.1:1"}`), func() bool { _, err := cat.Sled(ctx, id); return err == nil }
		}},
		"sled_expunge": {depot.RoleAdmin, 200, func(t *testing.T, n int) (string, []byte, func() bool) {
			id := fmt.Sprintf("x%d", n)
			if _, err := cat.PutSled(ctx, depot.SledRecord{ID: id, ControlURL: "http://127.0.0.1:1"}, nil); err != nil {
				t.Fatal(err)
			}
			return "/v1/sleds/" + id, nil, func() bool { r, _ := cat.Sled(ctx, id); return r.State == depot.SledExpunged }
		}},
		"replication_status_get": {depot.RoleViewer, 200, read("/v1/replication/status")},
		"replication_activate": {depot.RoleOperator, 202, func(t *testing.T, n int) (string, []byte, func() bool) {
			before := activations()
			return "/v1/replication/activate", nil, func() bool { return activations() > before }
		}},
		"audit_list": {depot.RoleViewer, 200, read("/v1/audit")},
		"token_list": {depot.RoleAdmin, 200, read("/v1/tokens")},
		"token_create": {depot.RoleAdmin, 201, func(t *testing.T, n int) (string, []byte, func() bool) {
			name := fmt.Sprintf("new%d", n)
			return "/v1/tokens", []byte(`{"name":"` + name + `","role":"viewer"}`), func() bool {
				toks, _ := cat.Tokens(ctx)
				return slices.ContainsFunc(toks, func(tk depot.Token) bool { return tk.Name == name })
			}
		}},
		"token_revoke": {depot.RoleAdmin, 204, func(t *testing.T, n int) (string, []byte, func() bool) {
			name := fmt.Sprintf("old%d", n)
			if _, _, err := cat.CreateToken(ctx, name, depot.RoleViewer, nil, nil); err != nil {
				t.Fatal(err)
			}
			return "/v1/tokens/" + name, nil, func() bool {
				toks, _ := cat.Tokens(ctx)
				return !slices.ContainsFunc(toks, func(tk depot.Token) bool { return tk.Name == name })
			}
		}},
	}

	doc, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	n, covered := 0, 0
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		for method, op := range item.Operations() {
			rc, ok := cases[op.OperationID]
			if !ok {
				t.Errorf("operator operation %s (%s %s) has no row in this table", op.OperationID, method, path)
				continue
			}
			covered++
			if op.Security == nil || len(*op.Security) == 0 || op.Responses.Status(401) == nil || op.Responses.Status(403) == nil {
				t.Errorf("%s: the document does not declare the bearer scheme with 401 and 403", op.OperationID)
			}
			for _, id := range identities {
				n++
				t.Run(op.OperationID+"/"+id.name, func(t *testing.T) {
					p, body, effect := rc.prepare(t, n)
					head := auditHead(t, cat)
					hdr := []string{"Content-Type", "application/json"}
					if id.header != "" {
						hdr = append(hdr, "Authorization", id.header)
					}
					resp, rb := do(t, method, e.opURL+p, bytes.NewReader(body), hdr...)
					allowed := id.role >= rc.role
					want, code, actor := rc.status, "", "token:"+id.role.String()
					switch {
					case id.role == depot.RoleNone:
						want, code, actor = 401, api.CodeUnauthenticated, ""
					case !allowed:
						want, code = 403, api.CodeForbidden
					}
					if resp.StatusCode != want {
						t.Fatalf("%s %s as %s: %d %s, want %d", method, p, id.name, resp.StatusCode, rb, want)
					}
					if code != "" {
						wantError(t, resp, rb, want, code)
					}
					if want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("401 without WWW-Authenticate: Bearer")
					}
					if want == 403 && !strings.Contains(string(rb), rc.role.String()) {
						t.Errorf("403 does not name the role needed (%s): %s", rc.role, rb)
					}
					if effect != nil && effect() != allowed {
						t.Errorf("effect happened: %v, want %v", !allowed, allowed)
					}
					// The audit log: refusals and changes, with the caller.
					rid := resp.Header.Get(api.RequestIDHeader)
					var rec *api.AuditRecord
					for _, r := range auditSince(t, cat, head) {
						if r.RequestID == rid {
							rec = &r
						}
					}
					switch {
					case effect == nil && allowed:
						if rec != nil {
							t.Errorf("an allowed read left an audit record: %+v", *rec)
						}
					case rec == nil:
						t.Errorf("no audit record for request %s", rid)
					case rec.Actor != actor || rec.Outcome.Status != want || rec.Outcome.ErrorCode != code:
						t.Errorf("audit record %+v, want actor %q, outcome %d %q", *rec, actor, want, code)
					}
				})
			}
		}
	}
	if covered != len(cases) {
		t.Errorf("%d operator operations in the document, %d rows in this table", covered, len(cases))
	}
}

// TestAuth_DevMode: with no token and a loopback listener the operator
// API is open, /status says so, and records name the anonymous caller;
// the first token created ends it.
func TestAuth_DevMode(t *testing.T) {
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	st, err := e.sled.Status(ctx)
	if err != nil || st.Auth != "disabled (loopback)" {
		t.Fatalf("status auth = %q, %v", st.Auth, err)
	}
	if _, err := e.op.PutSled(ctx, api.SledRecord{ID: "a", ControlURL: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	recs := auditSince(t, e.coord.Catalog(), 0)
	if len(recs) != 1 || recs[0].Actor != "anonymous (loopback)" || recs[0].Action != "sled.put" || recs[0].Target != "a" {
		t.Fatalf("audit = %+v", recs)
	}
	if _, err := e.op.CreateToken(ctx, "first", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.op.Sleds(ctx); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("after the first token, no token: %v", err)
	}
	if st, _ := e.sled.Status(ctx); st.Auth != "bearer tokens" {
		t.Fatalf("status auth = %q", st.Auth)
	}
}

// TestAuth_NonLoopbackWithoutTokens: the server itself fails closed when
// the operator listener is not loopback and no token exists.
func TestAuth_NonLoopbackWithoutTokens(t *testing.T) {
	e := newEnv(t, withCoordinator(), func(c *envConfig) { c.server.OperatorAddr = "10.0.0.1:12346" })
	if _, err := e.op.Sleds(context.Background()); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("sleds: %v", err)
	}
}

// TestAuth_RateLimit: past 10 failed authentications a second from one
// address, even a good token gets 429 with Retry-After; the failures are
// logged without the secret presented.
func TestAuth_RateLimit(t *testing.T) {
	e := newEnv(t, withCoordinator())
	secret, _, err := e.coord.Catalog().CreateToken(t.Context(), "ok", depot.RoleViewer, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const bad = "depot_thisisnotavalidtokenbutasecretstring"
	statuses := map[int]int{}
	for range 30 {
		resp, _ := do(t, "GET", e.opURL+"/v1/sleds", nil, "Authorization", "Bearer "+bad)
		statuses[resp.StatusCode]++
	}
	if statuses[401] < 10 || statuses[429] == 0 || statuses[401]+statuses[429] != 30 {
		t.Fatalf("statuses of 30 bad tokens: %v", statuses)
	}
	resp, body := do(t, "GET", e.opURL+"/v1/sleds", nil, "Authorization", "Bearer "+secret)
	if resp.StatusCode == 429 {
		wantError(t, resp, body, 429, api.CodeAuthRateLimited)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	// The bucket refills at 10 a second: a good token works again soon.
	waitFor(t, 5*time.Second, func() bool {
		resp, _ := do(t, "GET", e.opURL+"/v1/sleds", nil, "Authorization", "Bearer "+secret)
		return resp.StatusCode == 200
	})
	if strings.Contains(e.logs.String(), bad) || strings.Contains(e.logs.String(), secret) {
		t.Error("a presented token reached the log")
	}
	if !strings.Contains(e.logs.String(), "operator request refused") {
		t.Error("refusals are not logged")
	}
}

func waitFor(t testing.TB, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAudit_ConcurrentMutationsGapless: 16 clients changing the catalog at
// once leave a gapless chain that verifies, one record per request.
func TestAudit_ConcurrentMutationsGapless(t *testing.T) {
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	const clients, each = 16, 8
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c := client.New(e.opURL, nil)
			for j := range each {
				id := fmt.Sprintf("c%d-%d", i, j)
				if _, err := c.PutSled(ctx, api.SledRecord{ID: id, ControlURL: "http://127.0.0.1:1"}); err != nil {
					t.Errorf("put %s: %v", id, err)
				}
				if j%2 == 0 {
					if _, err := c.ExpungeSled(ctx, id); err != nil {
						t.Errorf("expunge %s: %v", id, err)
					}
				}
			}
		})
	}
	wg.Wait()
	want := clients * (each + each/2)
	var v auditchain.Verifier
	var since uint64
	for {
		page, err := e.op.Audit(ctx, since, 7, 0) // small pages: paging must not skip
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range page.Items {
			if err := v.Next(line); err != nil {
				t.Fatal(err)
			}
		}
		since, _ = v.Head()
		if len(page.Items) == 0 {
			break
		}
	}
	if n, _ := v.Head(); n != uint64(want) {
		t.Fatalf("%d records, want %d", n, want)
	}
}

// TestAudit_LongPoll: GET /v1/audit?wait answers when a record is
// appended, and with nothing when the wait ends.
func TestAudit_LongPoll(t *testing.T) {
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	page, err := e.op.Audit(ctx, 0, 0, 50*time.Millisecond)
	if err != nil || len(page.Items) != 0 || page.HeadSeq != 0 {
		t.Fatalf("empty log: %+v, %v", page, err)
	}
	got := make(chan api.AuditPage, 1)
	go func() {
		p, err := e.op.Audit(ctx, 0, 0, 30*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	time.Sleep(50 * time.Millisecond) // the poll is (most likely) waiting; either way it must see the record
	if err := e.op.ActivateReplication(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if len(p.Items) != 1 || p.HeadSeq != 1 {
			t.Fatalf("long-poll = %+v", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the long-poll did not answer after an append")
	}
}

// TestAuth_TokensFileNeverOpens: a tokens file whose tokens are all
// removed (or which is deleted) refuses everyone; it never falls back to
// dev mode, and a bad line gives no token while the good ones work.
func TestAuth_TokensFileNeverOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	secret := authtoken.NewSecret()
	if err := os.WriteFile(path, []byte("a viewer "+authtoken.HashSecret(secret).String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := depot.OpenTokenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withCoordinator(), func(c *envConfig) { c.server.Tokens = tf })
	c := client.New(e.opURL, nil)
	c.Token = secret
	ctx := context.Background()
	if _, err := c.Sleds(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("a viewer "+authtoken.HashSecret(secret).String()+"\nb admin "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tf.Reload(); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("reload of a bad line: %v", err)
	}
	if _, err := c.Sleds(ctx); err != nil {
		t.Fatalf("a good line next to a bad one: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	tf.Reload()
	if _, err := c.Sleds(ctx); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("token of a deleted file: %v", err)
	}
	if _, err := e.op.Sleds(ctx); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("no token, deleted file: %v", err)
	}
	if st, _ := e.sled.Status(ctx); st.Auth != "bearer tokens" {
		t.Fatalf("status auth %q", st.Auth)
	}
}
