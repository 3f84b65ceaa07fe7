package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"depot/store"
	"depot/store/storetest"
)

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

// filesUnder lists every regular file below dir except index databases.
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "index.db" {
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

func TestStore_Put_WritesEveryMirrorUnderItsHash(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(3<<20+17, 1)
	res, err := s.Put(context.Background(), d, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Datasets != 2 || res.SuccessfulWrites != 2 || res.Written != 2 {
		t.Fatalf("result = %+v, want 2/2/2", res)
	}
	for _, m := range mirrors {
		got, err := os.ReadFile(artifactFile(m, d))
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != d {
			t.Fatalf("file in %s does not hash to its name", m)
		}
		if tmp := filesUnder(t, filepath.Join(m, "tmp")); len(tmp) != 0 {
			t.Fatalf("temp files left: %v", tmp)
		}
	}
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("read back different bytes")
	}
	info, err := s.Stat(context.Background(), d)
	if err != nil || info.Copies != 2 || info.Size != int64(len(data)) {
		t.Fatalf("stat = %+v, %v", info, err)
	}
}

func TestStore_Put_UnknownSize(t *testing.T) {
	s, _ := testStore(t, nil)
	data, d := blob(100_000, 2)
	if _, err := s.Put(context.Background(), d, iotest.OneByteReader(bytes.NewReader(data)), -1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("read back different bytes")
	}
}

func TestStore_Put_HashMismatchLeavesNothing(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, _ := blob(2<<20, 3)
	_, wrong := blob(10, 4)
	_, err := s.Put(context.Background(), wrong, bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, store.ErrHashMismatch) {
		t.Fatalf("err = %v, want ErrHashMismatch", err)
	}
	for _, m := range mirrors {
		if f := filesUnder(t, m); len(f) != 0 {
			t.Fatalf("files left in %s: %v", m, f)
		}
	}
	if l, _ := s.List(context.Background()); len(l) != 0 {
		t.Fatalf("listed %v", l)
	}
}

func TestStore_Put_TruncatedBodyLeavesNothing(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(1<<20, 5)
	_, err := s.Put(context.Background(), d, bytes.NewReader(data[:1000]), int64(len(data)))
	if !errors.Is(err, store.ErrSizeMismatch) {
		t.Fatalf("err = %v, want ErrSizeMismatch", err)
	}
	for _, m := range mirrors {
		if f := filesUnder(t, m); len(f) != 0 {
			t.Fatalf("files left in %s: %v", m, f)
		}
	}
}

func TestStore_Put_ReadErrorLeavesNothing(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(3<<20, 6)
	boom := errors.New("connection reset")
	body := io.MultiReader(bytes.NewReader(data[:2<<20]), iotest.ErrReader(boom))
	_, err := s.Put(context.Background(), d, body, int64(len(data)))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the read error", err)
	}
	for _, m := range mirrors {
		if f := filesUnder(t, m); len(f) != 0 {
			t.Fatalf("files left in %s: %v", m, f)
		}
	}
}

func TestStore_Put_CanceledContextLeavesNothing(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(1<<20, 7)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, d, bytes.NewReader(data), -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	for _, m := range mirrors {
		if f := filesUnder(t, m); len(f) != 0 {
			t.Fatalf("files left in %s: %v", m, f)
		}
	}
}

func TestStore_Put_AlreadyPresentIsNotRewritten(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(4096, 8)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), 4096); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(artifactFile(mirrors[0], d))
	res, err := s.Put(context.Background(), d, bytes.NewReader(data), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 0 || res.SuccessfulWrites != 2 {
		t.Fatalf("second put = %+v, want nothing written and 2 copies", res)
	}
	after, _ := os.Stat(artifactFile(mirrors[0], d))
	if !os.SameFile(before, after) {
		t.Fatal("file was replaced")
	}
	// A wrong body for a stored digest is still refused.
	other, _ := blob(4096, 9)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(other), 4096); !errors.Is(err, store.ErrHashMismatch) {
		t.Fatalf("err = %v, want ErrHashMismatch", err)
	}
}

func TestStore_Put_ReadOnlyMirrorDegrades(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	faults[mirrors[1]].Set(storetest.Faults{ReadOnly: true})
	data, d := blob(1<<20, 10)
	res, err := s.Put(context.Background(), d, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if res.SuccessfulWrites != 1 {
		t.Fatalf("result = %+v, want 1 successful write", res)
	}
	st := s.Mirrors()
	if !st[0].Healthy || st[1].Healthy || st[1].LastError == "" {
		t.Fatalf("status = %+v, want second mirror unhealthy with an error", st)
	}

	// The mirror recovers; the next put of the same digest fills it.
	faults[mirrors[1]].Set(storetest.Faults{})
	if back := s.CheckMirrors(context.Background()); len(back) != 1 {
		t.Fatalf("mirrors back = %v", back)
	}
	res, err = s.Put(context.Background(), d, bytes.NewReader(data), int64(len(data)))
	if err != nil || res.Written != 1 || res.SuccessfulWrites != 2 {
		t.Fatalf("refill = %+v, %v; want 1 written, 2 copies", res, err)
	}
}

func TestStore_Put_WriteFailsMidwayOnOneMirror(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	faults[mirrors[0]].Set(storetest.Faults{FailWritesAfter: 1 << 20})
	data, d := blob(3<<20, 11)
	res, err := s.Put(context.Background(), d, bytes.NewReader(data), int64(len(data)))
	if err != nil || res.SuccessfulWrites != 1 {
		t.Fatalf("put = %+v, %v", res, err)
	}
	if f := filesUnder(t, mirrors[0]); len(f) != 0 {
		t.Fatalf("failed mirror kept %v", f)
	}
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("read back different bytes")
	}
}

func TestStore_Put_NoSpaceAnywhere(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	for _, m := range mirrors {
		faults[m].Set(storetest.Faults{NoSpace: true})
	}
	data, d := blob(10000, 12)
	_, err := s.Put(context.Background(), d, bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("err = %v, want ErrNoSpace", err)
	}
	// Both mirrors are now out; a further put says so.
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); !errors.Is(err, store.ErrNoMirrors) {
		t.Fatalf("err = %v, want ErrNoMirrors", err)
	}
}

func TestStore_Put_ConcurrentSameDigest(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(256<<10, 13)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Put(context.Background(), d, bytes.NewReader(data), int64(len(data)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range mirrors {
		f := filesUnder(t, m)
		if len(f) != 1 {
			t.Fatalf("mirror %s holds %v, want exactly one file", m, f)
		}
		got, _ := os.ReadFile(f[0])
		if sha256.Sum256(got) != d {
			t.Fatal("file does not hash to its name")
		}
	}
}

func TestStore_Put_MemoryStaysFlat(t *testing.T) {
	s, _ := testStore(t, nil)
	const size = 64 << 20
	body := io.LimitReader(rand.NewChaCha8([32]byte{1}), size) // not a []byte: nothing whole in memory
	h := sha256.New()
	io.Copy(h, io.LimitReader(rand.NewChaCha8([32]byte{1}), size))
	var d store.Digest
	h.Sum(d[:0])
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := s.Put(context.Background(), d, readerOnly{body}, size); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("a %d MiB put allocated %d MiB", size>>20, grew>>20)
	}
}

// readerOnly hides WriterTo and the like, as an HTTP body would.
type readerOnly struct{ io.Reader }

func TestStore_Open_FallsBackToNextMirror(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(5000, 14)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	// Truncate the first copy behind the store's back: its size no longer
	// matches the index, so it must not be served.
	if err := os.Truncate(artifactFile(mirrors[0], d), 10); err != nil {
		t.Fatal(err)
	}
	b, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.File.Close()
	if b.Mirror != mirrors[1] {
		t.Fatalf("served from %s, want the intact mirror", b.Mirror)
	}
	if _, ok := b.File.(*os.File); !ok {
		t.Fatalf("blob file is %T, want *os.File for sendfile", b.File)
	}
}

func TestStore_Open_NotFound(t *testing.T) {
	s, _ := testStore(t, nil)
	_, d := blob(1, 15)
	if _, err := s.Open(context.Background(), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(context.Background(), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestStore_Delete_RemovesFromEveryMirror(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(5000, 16)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), d); err != nil {
		t.Fatalf("delete of absent: %v", err)
	}
	for _, m := range mirrors {
		if f := filesUnder(t, m); len(f) != 0 {
			t.Fatalf("files left in %s: %v", m, f)
		}
	}
	if _, err := s.Open(context.Background(), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

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
	// The operator restores the folder (empty); the store re-opens it.
	if err := os.MkdirAll(mirrors[1], 0o755); err != nil {
		t.Fatal(err)
	}
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

func TestParseDigest(t *testing.T) {
	good := strings.Repeat("ab", 32)
	if d, err := store.ParseDigest(good); err != nil || d.String() != good {
		t.Fatalf("ParseDigest(%q) = %v, %v", good, d, err)
	}
	for _, bad := range []string{"", "abc", strings.ToUpper(good), good + "0", strings.Repeat("g", 64), "../" + good[3:]} {
		if _, err := store.ParseDigest(bad); !errors.Is(err, store.ErrInvalidDigest) {
			t.Errorf("ParseDigest(%q) err = %v, want ErrInvalidDigest", bad, err)
		}
	}
}

func TestStore_Delete_FailingMirrorCannotBringItBack(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	data, d := blob(5000, 23)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	faults[mirrors[1]].Set(storetest.Faults{ReadOnly: true})
	if err := s.Delete(context.Background(), d); err != nil {
		t.Fatalf("delete with one failing mirror: %v", err)
	}
	if _, err := s.Open(context.Background(), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted artifact still served: %v", err)
	}
	if _, err := os.Stat(artifactFile(mirrors[1], d)); err != nil {
		t.Fatalf("the read-only mirror lost its copy already? %v", err)
	}
	// The mirror recovers: the missed delete is done before it serves, and
	// a refill has nothing to bring back.
	faults[mirrors[1]].Set(storetest.Faults{})
	if back := s.CheckMirrors(context.Background()); len(back) != 1 {
		t.Fatalf("back = %v", back)
	}
	if _, err := os.Stat(artifactFile(mirrors[1], d)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missed delete not applied: %v", err)
	}
	st, err := s.Scrub(context.Background(), false)
	if err != nil || st.Repaired != 0 {
		t.Fatalf("refill = %+v, %v", st, err)
	}
	if l, _ := s.List(context.Background()); len(l) != 0 {
		t.Fatalf("listed %v after the mirror came back", l)
	}
}

// hookReader calls fn once, after n bytes were read.
type hookReader struct {
	r    io.Reader
	n    int64
	fn   func()
	done bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	if !h.done && h.n <= 0 {
		h.done = true
		h.fn()
	}
	if !h.done && int64(len(p)) > h.n {
		p = p[:h.n]
	}
	k, err := h.r.Read(p)
	h.n -= int64(k)
	return k, err
}

func TestStore_Put_MirrorVanishesMidWrite(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(8<<20, 24)
	body := &hookReader{r: bytes.NewReader(data), n: 3 << 20, fn: func() {
		if err := os.RemoveAll(mirrors[1]); err != nil {
			t.Error(err)
		}
	}}
	res, err := s.Put(context.Background(), d, body, int64(len(data)))
	if err != nil || res.SuccessfulWrites != 1 {
		t.Fatalf("put = %+v, %v; want success on the surviving mirror", res, err)
	}
	if st := s.Mirrors(); st[1].Healthy || !st[0].Healthy {
		t.Fatalf("status = %+v", st)
	}
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("read back different bytes")
	}
	if f := filesUnder(t, filepath.Join(mirrors[0], "tmp")); len(f) != 0 {
		t.Fatalf("temp files left: %v", f)
	}
}
