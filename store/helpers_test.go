package store_test

import (
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"depot/store"
	"depot/store/storetest"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testStore opens a store over two fresh mirrors. faults, when non-nil,
// receives one FaultFS per mirror.
func testStore(t testing.TB, faults map[string]*storetest.FaultFS) (*store.Store, []string) {
	t.Helper()
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	s := openStore(t, mirrors, faults)
	return s, mirrors
}

func openStore(t testing.TB, mirrors []string, faults map[string]*storetest.FaultFS) *store.Store {
	t.Helper()
	opts := store.Options{Mirrors: mirrors, Logger: discardLogger()}
	if faults != nil {
		for _, m := range mirrors {
			if faults[m] == nil {
				faults[m] = storetest.New()
			}
		}
		opts.FS = func(root string) store.FS { return faults[root] }
	}
	s, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func blob(n int, seed uint64) ([]byte, store.Digest) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, sha256.Sum256(b)
}

// filesUnder lists every regular file below dir except index databases
// and mirror markers.
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "index.db" && d.Name() != ".depot-mirror" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func artifactFile(mirror string, d store.Digest) string {
	h := d.String()
	return filepath.Join(mirror, "artifacts", h[:2], h)
}

func readAll(t testing.TB, s *store.Store, d store.Digest) []byte {
	t.Helper()
	b, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	defer b.File.Close()
	data, err := io.ReadAll(b.File)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// remakeMirror is what an operator does to bring back a mirror folder:
// make it and mark it as a mirror.
func remakeMirror(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "meta"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta", ".depot-mirror"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
