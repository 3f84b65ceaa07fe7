package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"depot/store"
	"depot/store/storetest"
)

// TestStore_UnderEveryFault runs the same life of a store with each kind of
// fault on its first mirror (the one reads go to first): writes, reads,
// a verify scrub and a delete while the fault lasts, then recovery and a
// restart. What must hold under every kind: writes are acknowledged from
// the healthy mirror, nothing partial or stale is left (no temp files, no
// index entry without its bytes on the healthy mirror), a read returns the
// right bytes or an error (a mirror that flips bytes on read is the one
// exception: reads check sizes, scrub checks bytes), and once the fault is
// gone every acknowledged artifact is on both mirrors byte for byte, and
// the deleted one on neither, also after a restart.
func TestStore_UnderEveryFault(t *testing.T) {
	for name, kind := range storetest.Kinds() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mirrors := []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
			faults := map[string]*storetest.FaultFS{}
			s := openStore(t, mirrors, faults)
			ctx := context.Background()
			want := map[store.Digest][]byte{}
			for i := range 3 {
				data, d := blob(200_000+i, uint64(500+i))
				if _, err := s.Put(ctx, d, bytes.NewReader(data), -1); err != nil {
					t.Fatal(err)
				}
				want[d] = data
			}
			var gone store.Digest
			for d := range want {
				gone = d
				break
			}

			faults[mirrors[0]].Set(kind)
			for i := range 3 {
				data, d := blob(300_000+i, uint64(600+i))
				res, err := s.Put(ctx, d, bytes.NewReader(data), -1)
				if err != nil || res.SuccessfulWrites < 1 {
					t.Fatalf("put under %s = %+v, %v", name, res, err)
				}
				want[d] = data
			}
			for d, data := range want {
				b, err := s.Open(ctx, d)
				if err != nil {
					continue // an error is an honest answer
				}
				got, rerr := io.ReadAll(b.File)
				b.File.Close()
				if rerr == nil && !kind.FlipOnRead && !bytes.Equal(got, data) {
					t.Fatalf("read of %s under %s returned wrong bytes", d, name)
				}
			}
			if _, err := s.Scrub(ctx, true); err != nil {
				t.Fatalf("scrub under %s: %v", name, err)
			}
			if err := s.Delete(ctx, gone); err != nil && !errors.Is(err, store.ErrBusy) {
				t.Fatalf("delete under %s: %v", name, err)
			}
			delete(want, gone)
			if isResource(kind) && !s.Mirrors()[0].Healthy {
				t.Fatalf("mirror marked unhealthy for a process resource: %+v", s.Mirrors()[0])
			}
			checkNoTemp(t, mirrors)
			checkIndexedBytes(t, s, mirrors[1])

			faults[mirrors[0]].Set(storetest.Faults{})
			s.CheckMirrors(ctx)
			if _, err := s.Scrub(ctx, true); err != nil {
				t.Fatal(err)
			}
			for i, st := range s.Mirrors() {
				if !st.Healthy {
					t.Fatalf("mirror %d still unhealthy after the fault: %+v", i, st)
				}
			}
			checkHolds(t, s, mirrors, want, gone)
			s.Close()

			s = openStore(t, mirrors, nil)
			checkHolds(t, s, mirrors, want, gone)
		})
	}
}

func isResource(f storetest.Faults) bool { return f.OpenErr == syscall.EMFILE }

func checkNoTemp(t *testing.T, mirrors []string) {
	t.Helper()
	for _, m := range mirrors {
		if f := filesUnder(t, filepath.Join(m, "tmp")); len(f) != 0 {
			t.Fatalf("temp files left in %s: %v", m, f)
		}
	}
}

// checkIndexedBytes: everything the store lists with a copy on mirror is
// there, byte for byte.
func checkIndexedBytes(t *testing.T, s *store.Store, mirror string) {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		if info.Copies < 1 {
			continue
		}
		got, err := os.ReadFile(artifactFile(mirror, info.Digest))
		if err != nil {
			continue // held by the other mirror only
		}
		if sha256.Sum256(got) != info.Digest {
			t.Fatalf("%s on %s does not hash to its name", info.Digest, mirror)
		}
	}
}

// checkHolds: the store lists exactly want, each on both mirrors byte for
// byte, and gone on neither.
func checkHolds(t *testing.T, s *store.Store, mirrors []string, want map[store.Digest][]byte, gone store.Digest) {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got, exp []string
	for _, info := range list {
		got = append(got, info.Digest.String())
		if info.Copies != len(mirrors) {
			t.Errorf("%s has %d copies, want %d", info.Digest, info.Copies, len(mirrors))
		}
	}
	for d := range want {
		exp = append(exp, d.String())
	}
	sort.Strings(exp)
	if len(got) != len(exp) {
		t.Fatalf("listed %d artifacts, want %d", len(got), len(exp))
	}
	for i := range got {
		if got[i] != exp[i] {
			t.Fatalf("listed %v, want %v", got, exp)
		}
	}
	for _, m := range mirrors {
		for d, data := range want {
			b, err := os.ReadFile(artifactFile(m, d))
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("%s on %s: %v", d, m, err)
			}
		}
		if _, err := os.Stat(artifactFile(m, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("deleted %s still on %s: %v", gone, m, err)
		}
	}
	checkNoTemp(t, mirrors)
}
