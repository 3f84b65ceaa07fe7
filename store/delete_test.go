package store_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"depot/store"
	"depot/store/storetest"
)

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
