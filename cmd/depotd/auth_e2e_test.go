package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"depot/depot/auditchain"
	"depot/depot/authtoken"
	"depot/server/api"
	"depot/server/client"
)

var (
	depotctlOnce sync.Once
	depotctlBin  string
	depotctlErr  error
)

// buildDepotctl builds the CLI once, for the tests that run it against a
// real daemon.
func buildDepotctl(t testing.TB) string {
	t.Helper()
	depotctlOnce.Do(func() {
		depotctlBin = filepath.Join(filepath.Dir(depotdBin), "depotctl")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", depotctlBin, "../depotctl").CombinedOutput()
		if err != nil {
			depotctlErr = errors.New(string(out))
		}
	})
	if depotctlErr != nil {
		t.Fatalf("build depotctl: %v", depotctlErr)
	}
	return depotctlBin
}

// writeTokens replaces the tokens file the way an editor that saves
// through a rename does.
func writeTokens(t testing.TB, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func tokenLine(name, role, secret string) string {
	return name + " " + role + " " + authtoken.HashSecret(secret).String()
}

func withToken(url, secret string) *client.Client {
	c := client.New(url, nil)
	c.Token = secret
	return c
}

func auditRecords(t testing.TB, c *client.Client) []api.AuditRecord {
	t.Helper()
	page, err := c.Audit(context.Background(), 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]api.AuditRecord, len(page.Items))
	for i, line := range page.Items {
		if err := json.Unmarshal(line, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestE2E_TokensAndAudit runs depotd with a tokens file: each mutation
// needs its role and leaves a record naming its caller; the file is
// re-read while running; a record changed in the catalog file while the
// daemon is stopped is named by depotctl audit verify.
func TestE2E_TokensAndAudit(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	ctx := context.Background()
	alice, root, bob := authtoken.NewSecret(), authtoken.NewSecret(), authtoken.NewSecret()
	tf := filepath.Join(work, "tokens")
	writeTokens(t, tf, "# operators", tokenLine("alice", "operator", alice), tokenLine("root", "admin", root))
	d := startDaemon(t, dir, "--tokens-file", tf)
	op, adm := withToken(d.opURL, alice), withToken(d.opURL, root)

	if st, err := d.sled.Status(ctx); err != nil || st.Auth != "bearer tokens" {
		t.Fatalf("status auth = %q, %v", st.Auth, err)
	}
	if _, err := d.op.Sleds(ctx); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("no token: %v", err)
	}
	repo, rootFile, _ := testRepo(t, work, "1.0.0", 2, 64<<10)
	rootDoc, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.AddTrustRoot(ctx, rootDoc); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("operator adds a trust root: %v", err)
	}
	tr, err := adm.AddTrustRoot(ctx, rootDoc)
	if err != nil {
		t.Fatal(err)
	}
	uploadFile(t, op, repo)
	if _, err := op.PutSled(ctx, api.SledRecord{ID: "s1", ControlURL: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.ExpungeSled(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := op.ActivateReplication(ctx); err != nil {
		t.Fatal(err)
	}
	if err := op.DeleteRepo(ctx, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := adm.DeleteTrustRoot(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	created, err := adm.CreateToken(ctx, "carol", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withToken(d.opURL, created.Secret).Repos(ctx); err != nil {
		t.Fatalf("a created token: %v", err)
	}
	if err := adm.RevokeToken(ctx, "carol"); err != nil {
		t.Fatal(err)
	}

	// Every mutation has its record, with the right actor.
	type want struct{ action, actor, target string }
	wants := []want{
		{"read", "", "GET /v1/sleds"},
		{"trust_root.add", "token:alice", ""},
		{"trust_root.add", "token:root", tr.ID},
		{"repo.upload", "token:alice", "1.0.0"},
		{"sled.put", "token:alice", "s1"},
		{"sled.expunge", "token:root", "s1"},
		{"replication.activate", "token:alice", ""},
		{"repo.prune", "token:alice", "1.0.0"},
		{"trust_root.remove", "token:root", tr.ID},
		{"token.create", "token:root", "carol"},
		{"token.revoke", "token:root", "carol"},
	}
	recs := auditRecords(t, adm)
	if len(recs) != len(wants) {
		t.Fatalf("%d audit records, want %d: %+v", len(recs), len(wants), recs)
	}
	for i, w := range wants {
		r := recs[i]
		if r.Action != w.action || r.Actor != w.actor || (w.target != "" && r.Target != w.target) || r.Source != "127.0.0.1" {
			t.Errorf("record %d = %+v, want %+v", i+1, r, w)
		}
	}
	if recs[0].Outcome.Status != 401 || recs[1].Outcome.Status != 403 || recs[1].Outcome.ErrorCode != "FORBIDDEN" {
		t.Errorf("refusals recorded as %+v, %+v", recs[0].Outcome, recs[1].Outcome)
	}

	// The tokens file changes while depotd runs: bob is added, alice is
	// removed; both take effect within a second.
	writeTokens(t, tf, tokenLine("root", "admin", root), tokenLine("bob", "viewer", bob))
	edited := time.Now()
	bobC := withToken(d.opURL, bob)
	for {
		_, bobErr := bobC.Repos(ctx)
		_, aliceErr := op.Repos(ctx)
		if bobErr == nil && errors.Is(aliceErr, api.ErrUnauthenticated) {
			break
		}
		if time.Since(edited) > time.Second {
			t.Fatalf("1 s after the tokens file changed: bob %v, alice %v", bobErr, aliceErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("tokens file change took effect within %v", time.Since(edited).Round(time.Millisecond))

	// depotctl verifies the intact chain and prints its head.
	ctl := buildDepotctl(t)
	out, err := exec.Command(ctl, "--operator-url", d.opURL, "--token", root, "audit", "verify").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "chain intact") {
		t.Fatalf("verify an intact log: %v\n%s", err, out)
	}
	out, err = exec.Command(ctl, "--operator-url", d.opURL, "audit").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "UNAUTHENTICATED") || !strings.Contains(string(out), "DEPOT_TOKEN") {
		t.Fatalf("audit without a token: %v\n%s", err, out)
	}

	// Change one record in the catalog file while depotd is stopped.
	d.stop(t)
	db, err := bolt.Open(filepath.Join(dir, "catalog.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const tampered = 5 // the sled.put by alice
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], tampered)
		v := b.Get(k[:])
		nv := []byte(strings.Replace(string(v), `"actor":"token:alice"`, `"actor":"token:zelda"`, 1))
		if string(nv) == string(v) {
			return errors.New("record 5 does not hold alice")
		}
		return b.Put(k[:], nv)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, dir, "--tokens-file", tf)
	out, err = exec.Command(ctl, "--operator-url", d.opURL, "--token", root, "audit", "verify").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "audit record 5 does not match") {
		t.Fatalf("verify a tampered log: %v\n%s", err, out)
	}
	// The chain goes on from the stored hashes: later records still link.
	var v auditchain.Verifier
	page, err := withToken(d.opURL, root).Audit(ctx, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mm *auditchain.Mismatch
	for _, line := range page.Items {
		if err := v.Next(line); err != nil {
			if !errors.As(err, &mm) || mm.Seq != tampered {
				t.Fatalf("verify: %v", err)
			}
			break
		}
	}
	if mm == nil {
		t.Fatal("the tampered record verified")
	}
}

// TestE2E_AuthDevModeAndRefusal: without tokens depotd serves the operator
// API open on loopback (and says so), and refuses to start with a
// non-loopback operator listener.
func TestE2E_AuthDevModeAndRefusal(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	if st, err := d.sled.Status(context.Background()); err != nil || st.Auth != "disabled (loopback)" {
		t.Fatalf("status auth = %q, %v", st.Auth, err)
	}
	if !strings.Contains(d.log.String(), "operator API authentication disabled") {
		t.Errorf("no dev mode warning at start:\n%s", d.log)
	}
	d.stop(t)

	// The check runs before anything is bound.
	r := launch(t, t.TempDir(), "--operator-listen", "0.0.0.0:0", "--insecure-plaintext")
	if code := r.wait(t, 15*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(r.log.String(), "not loopback, with no token configured") {
		t.Fatalf("no clear message:\n%s", r.log)
	}
}
