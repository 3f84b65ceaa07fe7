package depot_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"depot/depot"
)

// fillCatalog gives cat something in every bucket, more than one import
// transaction holds.
func fillCatalog(t *testing.T, cat *depot.Catalog) {
	t.Helper()
	e := func(a string) *depot.AuditEntry {
		return &depot.AuditEntry{Actor: "token:root", Action: a, Status: 200}
	}
	// 80 repositories of 150 artifacts, about 22 KB a record: 100 records
	// would be over etcd's request limit (1.5 MiB), so an import
	// transaction is bounded by size too (TestCatalog_Import_HalfDone
	// covers the bound on its count).
	for i := range 80 {
		names := []string{"shared"}
		for j := range 149 {
			names = append(names, fmt.Sprintf("artifact-%d-%d", i, j))
		}
		if _, inserted, _, err := cat.InsertRepo(t.Context(), testRepo(fmt.Sprintf("1.0.%d", i), names...), "", e("repo.insert")); err != nil || !inserted {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if _, _, err := cat.DeleteRepo(t.Context(), "1.0.7", e("repo.delete")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cat.AddTrustRoot(t.Context(), []byte(`{"signed":{"_type":"root"}}`), "api", e("trust_root.add")); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.PutSled(t.Context(), depot.SledRecord{ID: "s1", ControlURL: "http://127.0.0.1:1", DepotURL: "http://127.0.0.1:2"}, e("sled.put")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cat.CreateToken(t.Context(), "ci", depot.RoleOperator, nil, e("token.create")); err != nil {
		t.Fatal(err)
	}
	if err := cat.BeginSaga(t.Context(), depot.Saga{ID: "saga-1", Step: "staging", FileName: "x.zip"}); err != nil {
		t.Fatal(err)
	}
}

func exportOf(t *testing.T, s *depot.CatalogStorage) (string, depot.ExportSummary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := depot.ExportCatalog(t.Context(), s, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.String(), sum
}

// body is an export without its header line (which names the export, not
// the catalog): two exports of identical buckets have identical bodies.
func body(export string) string {
	_, rest, _ := strings.Cut(export, "\n")
	return rest
}

func openEtcdStorage(t *testing.T, prefix string) *depot.CatalogStorage {
	t.Helper()
	s, err := depot.OpenEtcdCatalogStorage(t.Context(), depot.EtcdOptions{Endpoints: sharedEtcd(t).Endpoints(), Prefix: prefix, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openFileStorage(t *testing.T, path string, create bool) *depot.CatalogStorage {
	t.Helper()
	s, err := depot.OpenCatalogFile(path, create, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCatalog_ExportImport_RoundTrip: bbolt → etcd → bbolt keeps every
// bucket byte for byte, the catalog id and a verifying audit chain, and
// the catalog opened on etcd serves what the bbolt one did.
func TestCatalog_ExportImport_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	cat, err := depot.OpenCatalog(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	fillCatalog(t, cat)
	id := cat.ID()
	wantRepos, _ := cat.Repos(t.Context())
	wantWanted, _ := cat.Wanted(t.Context())
	cat.Close()

	s1 := openFileStorage(t, src, false)
	exp1, sum1 := exportOf(t, s1)
	s1.Close()
	if sum1.CatalogID != id || sum1.Buckets["audit"] < 80 || sum1.Buckets["repos"] != 79 {
		t.Fatalf("export summary %+v", sum1)
	}

	prefix := newPrefix(t)
	es := openEtcdStorage(t, prefix)
	if sum, err := depot.ImportCatalog(t.Context(), es, strings.NewReader(exp1), t.TempDir()); err != nil || sum.Records != sum1.Records {
		t.Fatalf("import into etcd: %+v, %v", sum, err)
	}
	exp2, _ := exportOf(t, es)
	if body(exp2) != body(exp1) {
		t.Fatal("the etcd catalog's buckets differ from the bbolt file's")
	}

	ecat := openEtcdCatalog(t, prefix)
	if ecat.ID() != id {
		t.Fatalf("catalog id on etcd %s, exported %s", ecat.ID(), id)
	}
	verifyAll(t, ecat)
	repos, err := ecat.Repos(t.Context())
	if err != nil || len(repos) != len(wantRepos) {
		t.Fatalf("repos on etcd: %d, %v; want %d", len(repos), err, len(wantRepos))
	}
	if w, err := ecat.Wanted(t.Context()); err != nil || w.Generation != wantWanted.Generation || len(w.Sorted()) != len(wantWanted.Sorted()) {
		t.Fatalf("wanted on etcd: gen %d (%d artifacts), %v; want gen %d (%d)", w.Generation, len(w.Sorted()), err, wantWanted.Generation, len(wantWanted.Sorted()))
	}
	// The imported catalog carries on: the next change continues the
	// generation and the audit chain.
	if _, _, gen, err := ecat.InsertRepo(t.Context(), testRepo("2.0.0", "b"), "", &depot.AuditEntry{Action: "repo.insert", Status: 201}); err != nil || gen != wantWanted.Generation+1 {
		t.Fatalf("insert after import: gen %d, %v", gen, err)
	}
	verifyAll(t, ecat)

	dst := filepath.Join(dir, "dst.db")
	ds := openFileStorage(t, dst, true)
	exp3, _ := exportOf(t, es)
	if _, err := depot.ImportCatalog(t.Context(), ds, strings.NewReader(exp3), t.TempDir()); err != nil {
		t.Fatalf("import into bbolt: %v", err)
	}
	exp4, _ := exportOf(t, ds)
	if body(exp4) != body(exp3) {
		t.Fatal("the bbolt catalog's buckets differ from the etcd catalog's")
	}
	ds.Close()
	back, err := depot.OpenCatalog(dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.ID() != id {
		t.Fatalf("catalog id back in bbolt %s, want %s", back.ID(), id)
	}
	verifyAll(t, back)
}

// TestCatalog_Import_Refused: an import goes only into an empty catalog,
// and a damaged file changes nothing.
func TestCatalog_Import_Refused(t *testing.T) {
	src := openCatalog(t)
	fillCatalog(t, src)
	srcPath := filepath.Join(t.TempDir(), "c.db")
	// A second catalog with the same content, exported.
	c2, err := depot.OpenCatalog(srcPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c2.InsertRepo(t.Context(), testRepo("9.0.0", "z"), "", nil); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	s := openFileStorage(t, srcPath, false)
	exp, _ := exportOf(t, s)
	s.Close()

	forEach := []struct {
		name string
		open func(t *testing.T) *depot.CatalogStorage
	}{
		{"bbolt", func(t *testing.T) *depot.CatalogStorage {
			return openFileStorage(t, filepath.Join(t.TempDir(), "d.db"), true)
		}},
		{"etcd", func(t *testing.T) *depot.CatalogStorage { return openEtcdStorage(t, newPrefix(t)) }},
	}
	for _, b := range forEach {
		t.Run(b.name, func(t *testing.T) {
			dst := b.open(t)
			lines := strings.SplitAfter(exp, "\n")
			damaged := map[string]string{
				"empty":     "",
				"truncated": strings.Join(lines[:len(lines)/2], ""),
				"no end":    strings.Join(lines[:len(lines)-2], ""),
				"flipped":   strings.Replace(exp, `"bucket":"repos"`, `"bucket":"sleds"`, 1),
				"not json":  "hello\n",
				"version":   strings.Replace(exp, `"version":1`, `"version":9`, 1),
			}
			for name, text := range damaged {
				if _, err := depot.ImportCatalog(t.Context(), dst, strings.NewReader(text), t.TempDir()); err == nil {
					t.Fatalf("%s export imported", name)
				}
			}
			// Nothing was written: the good file still goes in.
			if _, err := depot.ImportCatalog(t.Context(), dst, strings.NewReader(exp), t.TempDir()); err != nil {
				t.Fatalf("import after refused ones: %v", err)
			}
			// Now it holds a catalog: a second import is refused.
			if _, err := depot.ImportCatalog(t.Context(), dst, strings.NewReader(exp), t.TempDir()); !errors.Is(err, depot.ErrCatalogNotEmpty) {
				t.Fatalf("import into a full catalog: %v", err)
			}
		})
	}

	// A catalog that was only opened has an id: not empty either.
	p := newPrefix(t)
	openEtcdCatalog(t, p)
	if _, err := depot.ImportCatalog(t.Context(), openEtcdStorage(t, p), strings.NewReader(exp), t.TempDir()); !errors.Is(err, depot.ErrCatalogNotEmpty) {
		t.Fatalf("import into an opened catalog: %v", err)
	}
	// No catalog under a prefix: nothing to export.
	if _, err := depot.ExportCatalog(t.Context(), openEtcdStorage(t, newPrefix(t)), &bytes.Buffer{}); err == nil {
		t.Fatal("export of an empty prefix succeeded")
	}
}
