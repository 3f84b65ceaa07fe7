package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"depot/store"
)

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
