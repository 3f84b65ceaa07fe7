package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"depot/depot"
	"depot/depot/etcdlocal"
)

// TestCatalogCmd_ExportImport: depotd catalog export of a bbolt catalog,
// import into a 3-member etcd, export from etcd, import into a new bbolt
// file: the catalog id and records are kept; refusals exit 1 with a
// message and change nothing.
func TestCatalogCmd_ExportImport(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src", "catalog.db")
	cat, err := depot.OpenCatalog(mustMkdir(t, src), 0)
	if err != nil {
		t.Fatal(err)
	}
	repo := depot.Repo{SystemVersion: "1.2.3", FileName: "r.zip", TimeCreated: time.Now().UTC()}
	if _, _, _, err := cat.InsertRepo(t.Context(), repo, "", &depot.AuditEntry{Action: "repo.insert", Status: 201}); err != nil {
		t.Fatal(err)
	}
	id := cat.ID()
	cat.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := etcdlocal.Start(ctx, filepath.Join(dir, "etcd"), 3, etcdlocal.Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	cmd := func(stdin string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := runCatalog(args, strings.NewReader(stdin), &out, &errb)
		return out.String(), errb.String(), code
	}
	exp1, msg, code := cmd("", "export", "--data", filepath.Dir(src))
	if code != 0 || !strings.Contains(msg, id) {
		t.Fatalf("export from bbolt: %d %s", code, msg)
	}
	etcdArgs := []string{"--catalog", cl.CatalogURL(), "--etcd-prefix", "/rack-1/"}
	if _, msg, code := cmd(exp1, append([]string{"import"}, etcdArgs...)...); code != 0 {
		t.Fatalf("import into etcd: %d %s", code, msg)
	}
	if _, msg, code := cmd(exp1, append([]string{"import"}, etcdArgs...)...); code != 1 || !strings.Contains(msg, "not empty") {
		t.Fatalf("second import into etcd: %d %s", code, msg)
	}
	exp2, msg, code := cmd("", append([]string{"export"}, etcdArgs...)...)
	if code != 0 {
		t.Fatalf("export from etcd: %d %s", code, msg)
	}
	dst := filepath.Join(dir, "dst", "catalog.db")
	cut := exp2[:strings.LastIndex(strings.TrimSuffix(exp2, "\n"), "\n")+1] // no end line
	if _, msg, code := cmd(cut, "import", "--catalog", dst); code != 1 || !strings.Contains(msg, "truncated") {
		t.Fatalf("import of half a file: %d %s", code, msg)
	}
	if _, msg, code := cmd(exp2, "import", "--catalog", dst); code != 0 {
		t.Fatalf("import into bbolt: %d %s", code, msg)
	}
	back, err := depot.OpenCatalog(dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.ID() != id {
		t.Fatalf("catalog id after the round trip %s, want %s", back.ID(), id)
	}
	if r, err := back.Repo(t.Context(), "1.2.3"); err != nil || r.FileName != "r.zip" {
		t.Fatalf("repository after the round trip: %+v %v", r, err)
	}
	// A bbolt catalog held by a running daemon (here, back) is refused.
	if _, msg, code := cmd("", "export", "--catalog", dst); code != 1 || !strings.Contains(msg, "stop it first") {
		t.Fatalf("export of a catalog in use: %d %s", code, msg)
	}
	if _, _, code := cmd("", "frobnicate"); code != 2 {
		t.Fatalf("unknown verb: exit %d", code)
	}
}

func mustMkdir(t *testing.T, file string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	return file
}
