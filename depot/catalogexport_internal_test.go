package depot

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// failingKV fails every update after the first ok ones: an import cut off
// midway (etcd lost quorum, the process was killed).
type failingKV struct {
	catalogKV
	ok int
}

func (f *failingKV) update(ctx context.Context, fn func(kvTx) error) error {
	if f.ok == 0 {
		return ErrCatalogUnavailable
	}
	f.ok--
	return f.catalogKV.update(ctx, fn)
}

// TestCatalog_Import_HalfDone: an import cut off after some chunks leaves
// a catalog that cannot be opened, refuses another export's import and is
// completed by importing the same export again.
func TestCatalog_Import_HalfDone(t *testing.T) {
	dir := t.TempDir()
	export := func(path string, extra string) string {
		cat, err := OpenCatalog(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 * importChunk {
			if _, err := cat.AppendAudit(t.Context(), &AuditEntry{Action: "test." + extra, Target: strings.Repeat("x", i%7), Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		cat.Close()
		s, err := OpenCatalogFile(path, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var buf bytes.Buffer
		if _, err := ExportCatalog(t.Context(), s, &buf); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	exp := export(filepath.Join(dir, "a.db"), "a")
	other := export(filepath.Join(dir, "b.db"), "b")

	dstPath := filepath.Join(dir, "dst.db")
	kv, err := openBoltKV(dstPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The marker and two chunks go in, then the catalog fails.
	half := &CatalogStorage{kv: &failingKV{catalogKV: kv, ok: 3}}
	if _, err := ImportCatalog(t.Context(), half, strings.NewReader(exp), t.TempDir()); !errors.Is(err, ErrCatalogUnavailable) {
		t.Fatalf("cut-off import: %v", err)
	}
	if _, err := newCatalog(t.Context(), &noClose{kv}); err == nil || !strings.Contains(err.Error(), "half-done import") {
		t.Fatalf("opening a half-imported catalog: %v", err)
	}
	s := &CatalogStorage{kv: kv}
	if _, err := ExportCatalog(t.Context(), s, &bytes.Buffer{}); err == nil {
		t.Fatal("a half-imported catalog was exported")
	}
	if _, err := ImportCatalog(t.Context(), s, strings.NewReader(other), t.TempDir()); !errors.Is(err, ErrCatalogNotEmpty) {
		t.Fatalf("another export into a half-imported catalog: %v", err)
	}
	if _, err := ImportCatalog(t.Context(), s, strings.NewReader(exp), t.TempDir()); err != nil {
		t.Fatalf("completing the import: %v", err)
	}
	var again bytes.Buffer
	if _, err := ExportCatalog(t.Context(), s, &again); err != nil {
		t.Fatal(err)
	}
	_, want, _ := strings.Cut(exp, "\n")
	_, got, _ := strings.Cut(again.String(), "\n")
	if got != want {
		t.Fatal("the completed import differs from the export")
	}
	cat, err := newCatalog(t.Context(), kv)
	if err != nil {
		t.Fatalf("open after completing: %v", err)
	}
	cat.Close()
}

// noClose keeps the kv open when newCatalog refuses it.
type noClose struct{ catalogKV }

func (noClose) close() error { return nil }
