package store_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"depot/store"
)

func TestStore_Scrub_RepairsCorruptCopy(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(300_000, 30)
	other, od := blob(1000, 31)
	for _, b := range [][]byte{data, other} {
		if _, err := s.Put(context.Background(), digestOf(b), bytes.NewReader(b), -1); err != nil {
			t.Fatal(err)
		}
	}
	// Flip one byte of the first mirror's copy, keeping its size.
	path := artifactFile(mirrors[0], d)
	bad := append([]byte(nil), data...)
	bad[12345] ^= 0x40
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}

	st, err := s.Scrub(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Corrupt != 1 || st.Repaired != 1 || st.Failed != 0 || st.Checked != 2 {
		t.Fatalf("scrub = %+v, want 1 corrupt, 1 repaired", st)
	}
	for _, m := range mirrors {
		got, err := os.ReadFile(artifactFile(m, d))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("copy in %s not repaired: %v", m, err)
		}
	}
	if !bytes.Equal(readAll(t, s, d), data) || !bytes.Equal(readAll(t, s, od), other) {
		t.Fatal("read back different bytes")
	}
	info, _ := s.Stat(context.Background(), d)
	if info.Copies != 2 || info.Verified.Before(st.Started) {
		t.Fatalf("stat after scrub = %+v", info)
	}
	if got := s.ScrubStatus(); got.Passes != 1 || got.TotalRepaired != 1 || got.Running {
		t.Fatalf("status = %+v", got)
	}
}

func TestStore_Scrub_EveryCopyCorruptIsRemoved(t *testing.T) {
	s, mirrors := testStore(t, nil)
	data, d := blob(5000, 32)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	bad[0] ^= 1
	for _, m := range mirrors {
		os.WriteFile(artifactFile(m, d), bad, 0o644)
	}
	st, err := s.Scrub(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Corrupt != 2 || st.Failed != 1 {
		t.Fatalf("scrub = %+v, want 2 corrupt, 1 failed", st)
	}
	// Never serve bytes that do not hash to their name.
	if _, err := s.Open(context.Background(), d); err == nil {
		t.Fatal("corrupt artifact still served")
	}
}

func TestStore_Scrub_RefillsRestoredMirror(t *testing.T) {
	s, mirrors := testStore(t, nil)
	var ds []store.Digest
	for i := range 5 {
		data, d := blob(10_000+i, uint64(40+i))
		if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	os.RemoveAll(mirrors[0])
	s.CheckMirrors(context.Background())
	if s.Mirrors()[0].Healthy {
		t.Fatal("removed mirror still healthy")
	}
	remakeMirror(t, mirrors[0])
	if back := s.CheckMirrors(context.Background()); len(back) != 1 {
		t.Fatalf("back = %v", back)
	}
	st, err := s.Scrub(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Repaired != 5 || st.Missing != 5 {
		t.Fatalf("refill = %+v, want 5 repaired", st)
	}
	for _, d := range ds {
		if info, _ := s.Stat(context.Background(), d); info.Copies != 2 {
			t.Fatalf("%s has %d copies after refill", d, info.Copies)
		}
		if _, err := os.Stat(artifactFile(mirrors[0], d)); err != nil {
			t.Fatal(err)
		}
	}
}

func digestOf(b []byte) store.Digest {
	h := store.NewHash()
	h.Write(b)
	var d store.Digest
	h.Sum(d[:0])
	return d
}

// A bounded scrub rate slows reads down but hashes and repairs the same
// bytes. The rate is below the 1 MiB read size, so reads are split to fit
// the limiter's burst. Only the outcome is asserted, never the timing.
func TestStore_Scrub_RateBoundedRepair(t *testing.T) {
	dir := t.TempDir()
	mirrors := []string{dir + "/m2a", dir + "/m2b"}
	s, err := store.Open(context.Background(), store.Options{Mirrors: mirrors, Logger: discardLogger(), ScrubRate: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data, d := blob(300_000, 33)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	bad[777] ^= 0x01
	if err := os.WriteFile(artifactFile(mirrors[1], d), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := s.Scrub(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Corrupt != 1 || st.Repaired != 1 || st.Failed != 0 || st.Bytes != 3*int64(len(data)) {
		t.Fatalf("scrub = %+v, want 1 corrupt, 1 repaired, %d bytes", st, 3*len(data))
	}
	got, err := os.ReadFile(artifactFile(mirrors[1], d))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy not repaired: %v", err)
	}
}
