package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"testing/iotest"

	"depot/store"
)

func TestStore_PutComputed(t *testing.T) {
	s, mirrors := testStore(t, nil)
	ctx := context.Background()
	data := bytes.Repeat([]byte("part"), 300_000) // more than one chunk
	want := store.Digest(sha256.Sum256(data))
	var admitted store.Digest
	var admittedN int64
	d, res, err := s.PutComputed(ctx, iotest.HalfReader(bytes.NewReader(data)), int64(len(data)), func(d store.Digest, n int64) error {
		// Nothing is visible before admit says so.
		if _, err := s.Stat(ctx, d); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat before admit = %v, want ErrNotFound", err)
		}
		admitted, admittedN = d, n
		return nil
	})
	if err != nil || d != want || admitted != want || admittedN != int64(len(data)) || res.SuccessfulWrites != 2 || res.Written != 2 {
		t.Fatalf("PutComputed = %s %+v %v (admitted %s %d)", d, res, err, admitted, admittedN)
	}
	b, err := s.Open(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b.File)
	b.File.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("stored bytes differ")
	}
	// Again: every mirror holds it, nothing is rewritten.
	_, res, err = s.PutComputed(ctx, bytes.NewReader(data), -1, func(store.Digest, int64) error { return nil })
	if err != nil || res.Written != 0 || res.SuccessfulWrites != 2 {
		t.Fatalf("second PutComputed = %+v, %v", res, err)
	}
	for _, m := range mirrors {
		if tmp := filesUnder(t, filepath.Join(m, "tmp")); len(tmp) != 0 {
			t.Errorf("temp files left: %v", tmp)
		}
	}
}

func TestStore_PutComputed_Refused(t *testing.T) {
	s, mirrors := testStore(t, nil)
	ctx := context.Background()
	data := []byte("refused part")
	no := errors.New("not admitted")
	if _, _, err := s.PutComputed(ctx, bytes.NewReader(data), -1, func(store.Digest, int64) error { return no }); !errors.Is(err, no) {
		t.Fatalf("got %v, want admit's error", err)
	}
	// A short body and a failing body are refused before admit.
	called := false
	admit := func(store.Digest, int64) error { called = true; return nil }
	if _, _, err := s.PutComputed(ctx, bytes.NewReader(data), 100, admit); !errors.Is(err, store.ErrSizeMismatch) {
		t.Fatalf("short body: %v", err)
	}
	if _, _, err := s.PutComputed(ctx, iotest.ErrReader(io.ErrClosedPipe), -1, admit); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("failing body: %v", err)
	}
	if called {
		t.Error("admit called for a refused body")
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Errorf("stored: %v", list)
	}
	for _, m := range mirrors {
		if tmp := filesUnder(t, filepath.Join(m, "tmp")); len(tmp) != 0 {
			t.Errorf("temp files left: %v", tmp)
		}
	}
}

func TestStore_PutPending_AbortAndCommit(t *testing.T) {
	s, mirrors := testStore(t, nil)
	ctx := context.Background()
	data := []byte("pending part")
	p, err := s.PutPending(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest() != store.Digest(sha256.Sum256(data)) || p.Size() != int64(len(data)) {
		t.Fatalf("pending %s %d", p.Digest(), p.Size())
	}
	if _, err := s.Stat(ctx, p.Digest()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("visible before commit: %v", err)
	}
	p.Abort()
	if _, err := p.Commit(); err == nil {
		t.Fatal("commit after abort succeeded")
	}
	for _, m := range mirrors {
		if tmp := filesUnder(t, filepath.Join(m, "tmp")); len(tmp) != 0 {
			t.Errorf("temp files left: %v", tmp)
		}
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("stored after abort: %v", list)
	}
	p, err = s.PutPending(ctx, bytes.NewReader(data), -1)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := p.Commit(); err != nil || res.Written != 2 {
		t.Fatalf("commit = %+v, %v", res, err)
	}
	p.Abort() // after commit: nothing
	if _, err := s.Stat(ctx, p.Digest()); err != nil {
		t.Fatalf("not visible after commit: %v", err)
	}
}
