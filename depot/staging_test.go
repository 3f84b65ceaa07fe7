package depot_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"depot/depot"
	"depot/store"
	"depot/tuf/tuftest"
)

// hookStore runs before(d) when a Put of d starts, then stores as usual.
type hookStore struct {
	*store.Store
	before func(d store.Digest)
}

func (h *hookStore) Put(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error) {
	if h.before != nil {
		h.before(d)
	}
	return h.Store.Put(ctx, d, body, size)
}

// failingUpload is an unmanaged sled and a repository whose first target
// (a.bin) stages and whose second (b.bin) fails its hash, so the upload is
// undone after a.bin was staged.
type failingUpload struct {
	st    *store.Store
	hook  *hookStore
	sled  *depot.Sled
	coord *depot.Coordinator
	good  []byte
	bad   store.Digest
	zip   []byte
}

func newFailingUpload(t *testing.T) *failingUpload {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(context.Background(), store.Options{Mirrors: []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hook := &hookStore{Store: st}
	sled, err := depot.NewSled(context.Background(), depot.SledOptions{Store: hook, Logger: log, Peer: newFakePeer()})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := depot.OpenCatalog(filepath.Join(dir, "catalog.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close(); sled.Close(); st.Close() })
	coord, err := depot.NewCoordinator(context.Background(), depot.CoordinatorOptions{Catalog: cat, Local: sled, Spool: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	good, badData := bytes.Repeat([]byte("a"), 40_000), bytes.Repeat([]byte("b"), 60_000)
	b := tuftest.NewBuilder(t)
	b.AddTarget("a.bin", good)
	b.AddTarget("b.bin", badData)
	b.SetManifest("7.0.0", []tuftest.Artifact{
		{Name: "a", Version: "7.0.0", Kind: "a", Target: "a.bin"},
		{Name: "b", Version: "7.0.0", Kind: "b", Target: "b.bin"},
	})
	if _, _, err := coord.AddTrustRoot(t.Context(), b.RootJSON(), "test", nil); err != nil {
		t.Fatal(err)
	}
	b.EditFiles(func(es []tuftest.Entry) []tuftest.Entry {
		for i, e := range es {
			if strings.HasSuffix(e.Name, "b.bin") {
				d := append([]byte(nil), e.Data...)
				d[len(d)/2] ^= 0xff
				es[i].Data = d
			}
		}
		return es
	})
	return &failingUpload{st: st, hook: hook, sled: sled, coord: coord, good: good, bad: digest(badData), zip: b.Archive(tuftest.Zip)}
}

func (f *failingUpload) upload(t *testing.T) {
	t.Helper()
	_, err := f.coord.Upload(context.Background(), "repo.zip", "", bytes.NewReader(f.zip), int64(len(f.zip)), nil)
	if !errors.Is(err, depot.ErrRepoInvalid) {
		t.Fatalf("upload: err = %v, want ErrRepoInvalid", err)
	}
}

// visible reports whether the sled lists, stats and serves d.
func visible(t *testing.T, s *depot.Sled, d store.Digest) (listed, served bool) {
	t.Helper()
	infos, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		listed = listed || in.Digest == d
	}
	body, err := s.ListJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inJSON := bytes.Contains(body, []byte(d.String())); inJSON != listed {
		t.Fatalf("List says %v, ListJSON says %v", listed, inJSON)
	}
	b, err := s.Open(context.Background(), d)
	if err == nil {
		b.File.Close()
		served = true
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Stat(context.Background(), d); (err == nil) != served {
		t.Fatalf("Stat err = %v, Open served = %v", err, served)
	}
	return listed, served
}

func TestUpload_FailingUploadStagedArtifactIsNeverVisible(t *testing.T) {
	f := newFailingUpload(t)
	a := digest(f.good)
	checked := false
	f.hook.before = func(d store.Digest) {
		if d != f.bad {
			return
		}
		// a.bin is staged, the upload is about to fail.
		if _, err := f.st.Stat(context.Background(), a); err != nil {
			t.Errorf("a.bin not staged yet: %v", err)
		}
		if listed, served := visible(t, f.sled, a); listed || served {
			t.Errorf("staged artifact of an unrecorded upload: listed %v, served %v", listed, served)
		}
		checked = true
	}
	f.upload(t)
	if !checked {
		t.Fatal("the upload never staged b.bin")
	}
	if _, err := f.st.Stat(context.Background(), a); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("undo left a.bin: %v", err)
	}
}

func TestUpload_UndoKeepsCopyPutByHandBefore(t *testing.T) {
	f := newFailingUpload(t)
	a := digest(f.good)
	if _, err := f.sled.Put(context.Background(), a, nil, bytes.NewReader(f.good), -1); err != nil {
		t.Fatal(err)
	}
	f.hook.before = func(d store.Digest) {
		if d == f.bad {
			if listed, served := visible(t, f.sled, a); !listed || !served {
				t.Errorf("hand-PUT artifact hidden during an upload: listed %v, served %v", listed, served)
			}
		}
	}
	f.upload(t)
	if listed, served := visible(t, f.sled, a); !listed || !served {
		t.Fatalf("undo took a hand-PUT artifact: listed %v, served %v", listed, served)
	}
}

func TestUpload_UndoKeepsCopyPutByHandDuring(t *testing.T) {
	f := newFailingUpload(t)
	a := digest(f.good)
	f.hook.before = func(d store.Digest) {
		if d != f.bad {
			return
		}
		f.hook.before = nil
		if _, err := f.sled.Put(context.Background(), a, nil, bytes.NewReader(f.good), -1); err != nil {
			t.Error(err)
		}
		if listed, served := visible(t, f.sled, a); !listed || !served {
			t.Errorf("artifact PUT by hand is hidden: listed %v, served %v", listed, served)
		}
	}
	f.upload(t)
	if listed, served := visible(t, f.sled, a); !listed || !served {
		t.Fatalf("undo took an artifact PUT by hand during the upload: listed %v, served %v", listed, served)
	}
}

func TestRecover_UndoKeepsArtifactPresentBeforeStaging(t *testing.T) {
	e := newCoordEnv(t)
	data := bytes.Repeat([]byte("p"), 1000)
	mine := bytes.Repeat([]byte("m"), 1000)
	for _, b := range [][]byte{data, mine} {
		if _, err := e.st.Put(context.Background(), digest(b), bytes.NewReader(b), -1); err != nil {
			t.Fatal(err)
		}
	}
	s := depot.Saga{ID: "crashed", Step: depot.StepStage, FileName: "x.zip",
		Staged: []store.Digest{digest(data), digest(mine)}, Present: []store.Digest{digest(data)}}
	if err := e.cat.BeginSaga(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if _, err := e.coord.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := stored(t, e.st)
	if !got[digest(data)] || got[digest(mine)] {
		t.Fatalf("after undo: present-before kept %v, staged dropped %v", got[digest(data)], !got[digest(mine)])
	}
}
