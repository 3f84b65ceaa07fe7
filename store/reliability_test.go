package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"depot/store"
	"depot/store/storetest"
)

// putN stores n small artifacts and returns their digests and bytes.
func putN(t *testing.T, s *store.Store, n int, seed uint64) map[store.Digest][]byte {
	t.Helper()
	out := make(map[store.Digest][]byte)
	for i := range n {
		data, d := blob(1000+i, seed+uint64(i))
		if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
		out[d] = data
	}
	return out
}

// waitFor polls cond for up to 30 s (a bound for loaded machines, not a
// timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func overwrite(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, n)
	rand.Read(junk)
	if _, err := f.WriteAt(junk, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// Item 1: a mirror whose index is unreadable neither stops start-up nor
// panics; the sled serves from the other mirror while the bad index is
// moved aside and rebuilt from the files.
func TestStore_Open_CorruptIndexIsRebuilt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, index string)
	}{
		{"head", func(t *testing.T, index string) { overwrite(t, index, 0, 8<<10) }},
		{"middle", func(t *testing.T, index string) {
			overwrite(t, index, middleLeaf(t, index)*4096, 4<<10)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
			s := openStore(t, mirrors, nil)
			stored := putN(t, s, 20, 100)
			s.Close()
			index := filepath.Join(mirrors[1], "index.db")
			fillIndex(t, index, 40_000) // a 2 MiB index, as on a busy sled
			tc.damage(t, index)

			s = openStore(t, mirrors, nil)
			for d, data := range stored {
				if !bytes.Equal(readAll(t, s, d), data) {
					t.Fatalf("%s reads back wrong", d)
				}
			}
			waitFor(t, "the rebuilt mirror to be healthy", func() bool { return s.Mirrors()[1].Healthy })
			if st := s.Mirrors()[1]; st.Artifacts != len(stored) {
				t.Fatalf("rebuilt mirror = %+v, want %d artifacts", st, len(stored))
			}
			aside, _ := filepath.Glob(index + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("old index kept as %v, want one file", aside)
			}
		})
	}
}

// middleLeaf is the id of a leaf page in use near the middle of the index.
func middleLeaf(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int64 = -1
	db.View(func(tx *bolt.Tx) error {
		n := int(tx.Size() / 4096)
		for i := n / 2; i < n; i++ {
			if p, err := tx.Page(i); err == nil && p != nil && p.Type == "leaf" {
				id = int64(i)
				return nil
			}
		}
		return nil
	})
	if id < 0 {
		t.Fatal("no leaf page in the second half of the index")
	}
	return id
}

// fillIndex adds n entries for files that do not exist (start-up drops
// them) to make the index large.
func fillIndex(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := make([]byte, 24)
	for start := 0; start < n; start += 5000 {
		if err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("artifacts"))
			for i := start; i < start+5000 && i < n; i++ {
				_, d := blob(8, uint64(1_000_000+i))
				if err := b.Put(d[:], rec); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// Item 1: a mirror that cannot be opened at all is left out, unhealthy,
// with the reason; the store opens on the others.
func TestStore_Open_UnopenableMirrorIsLeftOut(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	if err := os.MkdirAll(filepath.Join(mirrors[1], "index.db"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, mirrors, nil)
	st := s.Mirrors()
	if !st[0].Healthy || st[1].Healthy || st[1].LastError == "" {
		t.Fatalf("status = %+v, want m2a healthy, m2b unhealthy with its reason", st)
	}
	data, d := blob(100, 7)
	if res, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil || res.SuccessfulWrites != 1 {
		t.Fatalf("put = %+v, %v", res, err)
	}
}

// Item 1c: running out of file descriptors fails the request with ErrBusy
// and leaves every mirror healthy.
func TestStore_OutOfDescriptorsIsBusyNotAMirrorFault(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	old, dOld := blob(500, 8)
	if _, err := s.Put(context.Background(), dOld, bytes.NewReader(old), -1); err != nil {
		t.Fatal(err)
	}
	for _, m := range mirrors {
		faults[m].Set(storetest.Faults{OpenErr: syscall.EMFILE})
	}
	data, d := blob(500, 9)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("put err = %v, want ErrBusy", err)
	}
	if _, err := s.Open(context.Background(), dOld); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("open err = %v, want ErrBusy", err)
	}
	if _, err := s.CreateSpool("upload-"); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("spool err = %v, want ErrBusy", err)
	}
	for _, st := range s.Mirrors() {
		if !st.Healthy {
			t.Fatalf("mirror marked unhealthy for a process resource: %+v", st)
		}
	}
	for _, m := range mirrors {
		faults[m].Set(storetest.Faults{})
	}
	if res, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil || res.SuccessfulWrites != 2 {
		t.Fatalf("put after = %+v, %v", res, err)
	}
}

// Item 2: a spool write that fails is reported (507 for a full disk), the
// mirror is marked unhealthy, and the spool goes through the mirror's FS.
func TestStore_Spool_WriteErrorIsReported(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	faults[mirrors[0]].Set(storetest.Faults{NoSpace: true})
	f, err := s.CreateSpool("upload-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if !strings.HasPrefix(f.Name(), filepath.Join(mirrors[0], "tmp")) {
		t.Fatalf("spool %s not on the first mirror", f.Name())
	}
	data, _ := blob(3<<20, 10)
	if _, _, err := s.SpoolFrom(context.Background(), f, bytes.NewReader(data)); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("spool err = %v, want ErrNoSpace", err)
	}
	if st := s.Mirrors()[0]; st.Healthy {
		t.Fatalf("full mirror still healthy: %+v", st)
	}
	// The next spool lands on the healthy mirror and works.
	g, err := s.CreateSpool("upload-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(g.Name())
	defer g.Close()
	n, sum, err := s.SpoolFrom(context.Background(), g, bytes.NewReader(data))
	if err != nil || n != int64(len(data)) || sum != digestOf(data) {
		t.Fatalf("spool = %d, %s, %v", n, sum, err)
	}
	back, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("spool reads back %d bytes, %v", len(back), err)
	}
}

// hookFS calls onOpen after every read-only open of an artifact file.
type hookFS struct {
	*storetest.FaultFS
	mu     sync.Mutex
	onOpen func(name string)
}

func (h *hookFS) OpenFile(name string, flag int, perm os.FileMode) (store.File, error) {
	h.mu.Lock()
	hook := h.onOpen
	h.mu.Unlock()
	f, err := h.FaultFS.OpenFile(name, flag, perm)
	if err == nil && hook != nil && flag == os.O_RDONLY && len(filepath.Base(name)) == 64 {
		hook(name) // the file is open: it can be hashed after it is unlinked
	}
	return f, err
}

// Item 3: a delete that runs while scrub hashes a copy wins: scrub does not
// write the index entry back.
func TestStore_Scrub_DeleteWhileHashingStaysDeleted(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	hooks := map[string]*hookFS{}
	for _, m := range mirrors {
		hooks[m] = &hookFS{FaultFS: storetest.New()}
	}
	s, err := store.Open(context.Background(), store.Options{Mirrors: mirrors, Logger: discardLogger(),
		FS: func(root string) store.FS { return hooks[root] }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data, d := blob(5000, 11)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	// The delete runs while the last mirror's copy is hashed, after the
	// first mirror's was verified: nothing later in the pass cleans up.
	var once sync.Once
	hooks[mirrors[1]].mu.Lock()
	hooks[mirrors[1]].onOpen = func(string) {
		once.Do(func() {
			if err := s.Delete(context.Background(), d); err != nil {
				t.Errorf("delete: %v", err)
			}
		})
	}
	hooks[mirrors[1]].mu.Unlock()
	if _, err := s.Scrub(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(context.Background(), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted artifact back after scrub: %+v, %v", info, err)
	}
}

// Item 4: a delete a failing mirror missed survives a restart.
func TestStore_Delete_MissedDeleteSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	faults := map[string]*storetest.FaultFS{}
	s := openStore(t, mirrors, faults)
	data, d := blob(5000, 12)
	kept, dk := blob(6000, 13)
	for _, b := range [][]byte{data, kept} {
		if _, err := s.Put(context.Background(), digestOf(b), bytes.NewReader(b), -1); err != nil {
			t.Fatal(err)
		}
	}
	faults[mirrors[1]].Set(storetest.Faults{ReadOnly: true})
	if err := s.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, mirrors, nil)
	if _, err := s.Stat(context.Background(), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted artifact back after restart: %v", err)
	}
	if _, err := s.Scrub(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	for _, m := range mirrors {
		if _, err := os.Stat(artifactFile(m, d)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still holds the deleted artifact: %v", m, err)
		}
		if _, err := os.Stat(artifactFile(m, dk)); err != nil {
			t.Fatalf("%s lost an artifact that was not deleted: %v", m, err)
		}
	}
	// Put again after the delete: the tombstone is gone, the artifact stays
	// across a restart.
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, mirrors, nil)
	if info, err := s.Stat(context.Background(), d); err != nil || info.Copies != 2 {
		t.Fatalf("re-put artifact after restart = %+v, %v", info, err)
	}
}

// Item 1b: an artifact written while a mirror comes back reaches that
// mirror without waiting for the next scheduled scrub.
func TestStore_Put_MirrorReturningDuringWriteGetsACopy(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	faults[mirrors[1]].Set(storetest.Faults{ReadOnly: true})
	putN(t, s, 1, 14) // marks m2b unhealthy
	if s.Mirrors()[1].Healthy {
		t.Fatal("read-only mirror still healthy")
	}
	data, d := blob(3<<20, 15)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(context.Background(), d, pr, int64(len(data)))
		done <- err
	}()
	if _, err := pw.Write(data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	// The mirror comes back and its refill pass runs to the end while the
	// write is still in flight.
	faults[mirrors[1]].Set(storetest.Faults{})
	if back := s.CheckMirrors(context.Background()); len(back) != 1 {
		t.Fatalf("back = %v", back)
	}
	if _, err := s.Scrub(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	passes := s.ScrubStatus().Passes
	pw.Write(data[1<<20:])
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refill pass after the write", func() bool {
		st := s.ScrubStatus()
		return st.Passes > passes && !st.Running
	})
	if info, _ := s.Stat(context.Background(), d); info.Copies != 2 {
		t.Fatalf("artifact written while the mirror returned has %d copies", info.Copies)
	}
}

// Item 5: a file that hashes to its name wins over an index entry whose
// size disagrees: start-up keeps it and a verify pass corrects the entry.
func TestStore_FileThatHashesWinsOverIndexSize(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	s := openStore(t, mirrors, nil)
	data, d := blob(5000, 16)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, m := range mirrors {
		db, err := bolt.Open(filepath.Join(m, "index.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("artifacts"))
			rec := append([]byte(nil), b.Get(d[:])...)
			rec[7]++ // size + 1
			return b.Put(d[:], rec)
		})
		db.Close()
	}
	s = openStore(t, mirrors, nil)
	for _, m := range mirrors {
		if _, err := os.Stat(artifactFile(m, d)); err != nil {
			t.Fatalf("a file that hashes to its name was removed: %v", err)
		}
	}
	if _, err := s.Scrub(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(context.Background(), d); err != nil || info.Copies != 2 || info.Size != int64(len(data)) {
		t.Fatalf("after verify = %+v, %v", info, err)
	}
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("reads back wrong")
	}
}

// Item 5: start-up reconcile fsyncs the folders it removed files from and
// does not ignore a failure to.
func TestStore_Open_ReconcileFsyncFailureIsReported(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	s := openStore(t, mirrors, nil)
	s.Close()
	bad, d := blob(3000, 17)
	bad[0] ^= 1
	os.MkdirAll(filepath.Dir(artifactFile(mirrors[1], d)), 0o755)
	os.WriteFile(artifactFile(mirrors[1], d), bad, 0o644)
	faults := map[string]*storetest.FaultFS{mirrors[1]: storetest.New()}
	faults[mirrors[1]].Set(storetest.Faults{FailSync: true})
	s = openStore(t, mirrors, faults)
	st := s.Mirrors()
	if !st[0].Healthy || st[1].Healthy || !strings.Contains(st[1].LastError, "fsync") {
		t.Fatalf("status = %+v, want m2b unhealthy for the failed fsync", st)
	}
}

// Item 5: a disk that stops answering does not hang a write whose
// context is cancelled.
func TestStore_Put_HungMirrorDoesNotHangCancellation(t *testing.T) {
	faults := map[string]*storetest.FaultFS{}
	s, mirrors := testStore(t, faults)
	hang := make(chan struct{})
	defer close(hang)
	faults[mirrors[1]].Set(storetest.Faults{HangWrites: hang})
	ctx, cancel := context.WithCancel(context.Background())
	data, d := blob(8<<20, 18)
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, d, bytes.NewReader(data), -1)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("put still hangs 30 s after its context was cancelled")
	}
}

// Item 5: an index inode that cannot be read leaves the mirror out with its
// reason (vanish detection needs it), and the store serves from the rest.
func TestStore_Open_FailedInodeReadLeavesMirrorOut(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	openStore(t, mirrors, nil).Close()
	faults := map[string]*storetest.FaultFS{mirrors[1]: storetest.New()}
	faults[mirrors[1]].Set(storetest.Faults{FailStatOf: "index.db"})
	s := openStore(t, mirrors, faults)
	st := s.Mirrors()
	if !st[0].Healthy || st[1].Healthy || !strings.Contains(st[1].LastError, "stat index") {
		t.Fatalf("status = %+v, want m2a healthy, m2b unhealthy for its index inode", st)
	}
	data, d := blob(100, 11)
	if res, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil || res.SuccessfulWrites != 1 {
		t.Fatalf("put = %+v, %v", res, err)
	}
}
