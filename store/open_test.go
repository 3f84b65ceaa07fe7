package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"depot/store"
)

func TestStore_Open_SecondProcessIsLocked(t *testing.T) {
	s, mirrors := testStore(t, nil)
	_ = s
	_, err := store.Open(context.Background(), store.Options{Mirrors: mirrors, Logger: discardLogger(), LockTimeout: 50e6})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
}

func TestStore_Open_ReconcilesIndexAndFiles(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	s := openStore(t, mirrors, nil)
	kept, dk := blob(1000, 17)
	gone, dg := blob(1000, 18)
	for _, b := range [][]byte{kept, gone} {
		if _, err := s.Put(context.Background(), store.Digest(sha256.Sum256(b)), bytes.NewReader(b), -1); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// What a crash can leave: a temp file, a published file the index never
	// heard of, a file that does not hash to its name, an entry whose file
	// is gone.
	orphan, do := blob(2000, 19)
	bad, db := blob(3000, 20)
	bad[0] ^= 1
	for _, m := range mirrors {
		os.WriteFile(filepath.Join(m, "tmp", do.String()+".123"), orphan[:10], 0o644)
		os.MkdirAll(filepath.Dir(artifactFile(m, do)), 0o755)
		os.MkdirAll(filepath.Dir(artifactFile(m, db)), 0o755)
		os.WriteFile(artifactFile(m, do), orphan, 0o644)
		os.WriteFile(artifactFile(m, db), bad, 0o644)
		os.Remove(artifactFile(m, dg))
		os.WriteFile(filepath.Join(m, "artifacts", "README"), []byte("operator note"), 0o644)
	}

	s = openStore(t, mirrors, nil)
	list, _ := s.List(context.Background())
	got := map[store.Digest]int{}
	for _, i := range list {
		got[i.Digest] = i.Copies
	}
	want := map[store.Digest]int{dk: 2, do: 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for _, m := range mirrors {
		if f := filesUnder(t, filepath.Join(m, "tmp")); len(f) != 0 {
			t.Fatalf("temp files left: %v", f)
		}
		if _, err := os.Stat(artifactFile(m, db)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("corrupt file kept: %v", err)
		}
		if _, err := os.Stat(filepath.Join(m, "artifacts", "README")); err != nil {
			t.Fatalf("unknown file was touched: %v", err)
		}
	}
	if !bytes.Equal(readAll(t, s, do), orphan) {
		t.Fatal("adopted artifact reads back wrong")
	}
}

func TestStore_Mirror_VanishesAndComesBack(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(5000, 21)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(mirrors[1]); err != nil {
		t.Fatal(err)
	}
	data2, d2 := blob(6000, 22)
	res, err := s.Put(context.Background(), d2, bytes.NewReader(data2), -1)
	if err != nil || res.SuccessfulWrites != 1 {
		t.Fatalf("put with a vanished mirror = %+v, %v", res, err)
	}
	if st := s.Mirrors(); st[1].Healthy {
		t.Fatalf("vanished mirror still healthy: %+v", st[1])
	}
	// Still readable from the survivor.
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("read back different bytes")
	}
	// The folder comes back empty, without the marker (an unmounted disk's
	// mount point): it is not taken for the mirror.
	if err := os.MkdirAll(mirrors[1], 0o755); err != nil {
		t.Fatal(err)
	}
	if back := s.CheckMirrors(context.Background()); len(back) != 0 {
		t.Fatalf("a folder without the marker came back as a mirror: %v", back)
	}
	if st := s.Mirrors()[1]; st.Healthy || !strings.Contains(st.LastError, "marker") {
		t.Fatalf("unmarked folder = %+v, want unhealthy, saying why", st)
	}
	if f, _ := os.ReadDir(mirrors[1]); len(f) != 0 {
		t.Fatalf("the store wrote into the unmarked folder: %v", f)
	}
	// The operator restores the folder (empty) and marks it; the store
	// re-opens it.
	remakeMirror(t, mirrors[1])
	if back := s.CheckMirrors(context.Background()); len(back) != 1 {
		t.Fatalf("mirrors back = %v", back)
	}
	if st := s.Mirrors(); !st[1].Healthy || st[1].Artifacts != 0 {
		t.Fatalf("restored mirror = %+v, want healthy and empty", st[1])
	}
	res, err = s.Put(context.Background(), d2, bytes.NewReader(data2), -1)
	if err != nil || res.Written != 1 || res.SuccessfulWrites != 2 {
		t.Fatalf("refill = %+v, %v", res, err)
	}
}

// A store whose mirrors are marked does not take a new, unmarked folder for
// a mirror at start-up either (a disk not mounted before depotd starts).
func TestStore_Open_UnmarkedFolderIsNotAMirror(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	s := openStore(t, mirrors, nil)
	s.Close()
	if err := os.RemoveAll(mirrors[1]); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(mirrors[1], 0o755) // the empty mount point
	s = openStore(t, mirrors, nil)
	if st := s.Mirrors(); !st[0].Healthy || st[1].Healthy || !strings.Contains(st[1].LastError, "marker") {
		t.Fatalf("status = %+v, want m2b left out for its missing marker", st)
	}
	if f, _ := os.ReadDir(mirrors[1]); len(f) != 0 {
		t.Fatalf("the store wrote into the unmarked folder: %v", f)
	}
}
