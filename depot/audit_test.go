package depot_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"depot/depot"
	"depot/depot/auditchain"
)

func openCatalog(t testing.TB) *depot.Catalog {
	t.Helper()
	cat, err := depot.OpenCatalog(filepath.Join(t.TempDir(), "catalog.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

func verifyAll(t testing.TB, cat *depot.Catalog) []map[string]any {
	t.Helper()
	recs, head, err := cat.Audit(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var v auditchain.Verifier
	var out []map[string]any
	for _, r := range recs {
		if err := v.Next(r.Line); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(r.Line, &m)
		out = append(out, m)
	}
	if n, _ := v.Head(); n != head {
		t.Fatalf("verified %d records, head %d", n, head)
	}
	return out
}

// TestCatalog_Audit_SameTransaction: a change appends its record; a
// refused change appends none and changes nothing; a no-op appends none.
func TestCatalog_Audit_SameTransaction(t *testing.T) {
	cat := openCatalog(t)
	e := &depot.AuditEntry{Actor: "token:a", Source: "127.0.0.1", RequestID: "r1", Action: "sled.put", Target: "s1", Status: 200}
	if _, err := cat.PutSled(t.Context(), depot.SledRecord{ID: "s1", ControlURL: "http://127.0.0.1:1"}, e); err != nil {
		t.Fatal(err)
	}
	if seq, ok := e.Recorded(); !ok || seq != 1 {
		t.Fatalf("recorded = %d, %v", seq, ok)
	}
	bad := &depot.AuditEntry{Actor: "token:a", Action: "sled.put", Status: 200}
	if _, err := cat.PutSled(t.Context(), depot.SledRecord{ID: "s2", ControlURL: "ftp://x"}, bad); !errors.Is(err, depot.ErrInvalidSled) {
		t.Fatal(err)
	}
	if _, ok := bad.Recorded(); ok {
		t.Fatal("a refused change was recorded")
	}
	if err := cat.DeleteTrustRoot(t.Context(), strings.Repeat("0", 64), bad); !errors.Is(err, depot.ErrTrustRootNotFound) {
		t.Fatal(err)
	}
	if _, ok := bad.Recorded(); ok {
		t.Fatal("a failed delete was recorded")
	}
	add := &depot.AuditEntry{Actor: "token:root", Action: "trust_root.add", Status: 201}
	if _, created, err := cat.AddTrustRoot(t.Context(), []byte(`{"x":1}`), "api", add); err != nil || !created {
		t.Fatal(err)
	}
	again := &depot.AuditEntry{Actor: "token:root", Action: "trust_root.add", Status: 201}
	if _, created, err := cat.AddTrustRoot(t.Context(), []byte(`{"x":1}`), "api", again); err != nil || created {
		t.Fatal(err)
	}
	if _, ok := again.Recorded(); ok {
		t.Fatal("adding a known root changed nothing, yet was recorded")
	}
	if _, err := cat.AppendAudit(t.Context(), &depot.AuditEntry{Action: "read", Status: 401, ErrorCode: "UNAUTHENTICATED"}); err != nil {
		t.Fatal(err)
	}
	recs := verifyAll(t, cat)
	if len(recs) != 3 || recs[0]["actor"] != "token:a" || recs[1]["action"] != "trust_root.add" || recs[2]["action"] != "read" {
		t.Fatalf("records: %v", recs)
	}
	if _, err := cat.Sled(t.Context(), "s2"); !errors.Is(err, depot.ErrSledNotFound) {
		t.Fatal("the refused sled was stored")
	}
}

// TestCatalog_Audit_Paging: since and limit page through the log in order.
func TestCatalog_Audit_Paging(t *testing.T) {
	cat := openCatalog(t)
	for range 10 {
		if _, err := cat.AppendAudit(t.Context(), &depot.AuditEntry{Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	recs, head, err := cat.Audit(t.Context(), 4, 3)
	if err != nil || head != 10 || len(recs) != 3 || recs[0].Seq != 5 || recs[2].Seq != 7 {
		t.Fatalf("Audit(4, 3) = %v, %d, %v", recs, head, err)
	}
}

func TestCatalog_Tokens(t *testing.T) {
	cat := openCatalog(t)
	if has, _ := cat.HasTokens(t.Context()); has {
		t.Fatal("a fresh catalog has tokens")
	}
	secret, tok, err := cat.CreateToken(t.Context(), "ci", depot.RoleOperator, nil, &depot.AuditEntry{Actor: "token:root", Action: "token.create", Status: 201})
	if err != nil || tok.CreatedBy != "token:root" || strings.Contains(tok.Hash, secret) {
		t.Fatalf("create: %+v, %v", tok, err)
	}
	if got, ok, err := cat.TokenByHash(t.Context(), depot.HashToken(secret)); err != nil || !ok || got.Name != "ci" {
		t.Fatalf("lookup: %+v %v %v", got, ok, err)
	}
	if _, _, err := cat.CreateToken(t.Context(), "ci", depot.RoleViewer, nil, nil); !errors.Is(err, depot.ErrTokenExists) {
		t.Fatalf("twice: %v", err)
	}
	if _, _, err := cat.CreateToken(t.Context(), "in-file", depot.RoleViewer, func(n string) bool { return n == "in-file" }, nil); !errors.Is(err, depot.ErrTokenExists) {
		t.Fatalf("a name of the file: %v", err)
	}
	for _, name := range []string{"", "a b", strings.Repeat("x", 65), "é"} {
		if _, _, err := cat.CreateToken(t.Context(), name, depot.RoleViewer, nil, nil); !errors.Is(err, depot.ErrInvalidToken) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if err := cat.RevokeToken(t.Context(), "ci", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := cat.TokenByHash(t.Context(), depot.HashToken(secret)); ok {
		t.Fatal("a revoked token is still found")
	}
	if err := cat.RevokeToken(t.Context(), "ci", nil); !errors.Is(err, depot.ErrTokenNotFound) {
		t.Fatal(err)
	}
	if n := len(verifyAll(t, cat)); n != 1 {
		t.Fatalf("%d records, want 1 (the audited create)", n)
	}
}

func TestParseTokensFile(t *testing.T) {
	h := depot.HashToken("depot_x").String()
	in := strings.Join([]string{
		"# comment", "", "alice operator " + h,
		"bob viewer",                          // too few fields
		"carol root " + h,                     // bad role
		"dave admin depot_cleartext",          // a token, not a hash
		"erin admin " + h, "erin viewer " + h, // twice: neither
		"  frank\tadmin\t" + h + "  ",
	}, "\n")
	toks, errs := depot.ParseTokensFile(strings.NewReader(in))
	var names []string
	for _, tk := range toks {
		names = append(names, tk.Name+":"+tk.Role)
	}
	if strings.Join(names, ",") != "alice:operator,frank:admin" || len(errs) != 5 {
		t.Fatalf("tokens %v, errors %v", names, errs)
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), "depot_cleartext") {
			t.Errorf("an error quotes what may be a token: %v", err)
		}
	}
}

// BenchmarkCatalog_PutSled measures a catalog change with and without its
// audit record (same transaction, so the same fsyncs).
func BenchmarkCatalog_PutSled(b *testing.B) {
	for _, audited := range []bool{false, true} {
		b.Run(map[bool]string{false: "no-audit", true: "audited"}[audited], func(b *testing.B) {
			cat := openCatalog(b)
			for i := 0; b.Loop(); i++ {
				var e *depot.AuditEntry
				if audited {
					e = &depot.AuditEntry{Actor: "token:ops", Source: "127.0.0.1", RequestID: "0123456789abcdef0123456789abcdef", Action: "sled.put", Target: "s", Status: 200}
				}
				if _, err := cat.PutSled(b.Context(), depot.SledRecord{ID: "s", ControlURL: "http://127.0.0.1:1"}, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
