package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"

	"depot/store"
	"depot/store/storetest"
)

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
