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
	"depot/tuf"
	"depot/tuf/tuftest"
)

type coordEnv struct {
	*env
	cat   *depot.Catalog
	coord *depot.Coordinator
	dir   string
}

func newCoordEnv(t testing.TB) *coordEnv {
	t.Helper()
	e := &coordEnv{env: newEnv(t, depot.SledOptions{HoldReconciler: true}), dir: t.TempDir()}
	e.openCoord(t)
	return e
}

func (e *coordEnv) openCoord(t testing.TB) {
	t.Helper()
	cat, err := depot.OpenCatalog(filepath.Join(e.dir, "catalog.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	coord, err := depot.NewCoordinator(context.Background(), depot.CoordinatorOptions{
		Catalog: cat, Local: e.sled, Spool: e.st, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sled.StartReconciler()
	e.cat, e.coord = cat, coord
	t.Cleanup(func() { cat.Close() })
}

// repoArchive builds a signed repository with two artifacts and returns
// the zip, its root and the artifacts' contents.
func repoArchive(t testing.TB, version string, seed byte) (zip, root []byte, arts map[string][]byte) {
	t.Helper()
	b, arts := repoBuilder(t, version, seed)
	return b.Archive(tuftest.Zip), b.RootJSON(), arts
}

func repoBuilder(t testing.TB, version string, seed byte) (*tuftest.Builder, map[string][]byte) {
	t.Helper()
	b := tuftest.NewBuilder(t)
	var arts map[string][]byte
	arts = map[string][]byte{
		"zone-" + version + ".bin": bytes.Repeat([]byte{seed, 'z'}, 50_000),
		"sp-" + version + ".bin":   bytes.Repeat([]byte{seed, 's'}, 70_000),
	}
	var list []tuftest.Artifact
	for name, data := range arts {
		b.AddTarget(name, data)
		list = append(list, tuftest.Artifact{Name: strings.Split(name, "-")[0], Version: version, Kind: strings.Split(name, "-")[0], Target: name})
	}
	b.SetManifest(version, list)
	return b, arts
}

func (e *coordEnv) upload(t testing.TB, archive []byte) (depot.UploadResult, error) {
	t.Helper()
	return e.coord.Upload(context.Background(), "repo.zip", "", bytes.NewReader(archive), int64(len(archive)), nil)
}

func TestCoordinator_Upload_StoresArtifactsAndManagesLocalSled(t *testing.T) {
	e := newCoordEnv(t)
	zip, root, arts := repoArchive(t, "1.0.0", 1)
	if _, _, err := e.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
		t.Fatal(err)
	}
	res, err := e.upload(t, zip)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != depot.UploadInserted || res.Repo.SystemVersion != "1.0.0" || len(res.Repo.Artifacts) != 2 {
		t.Fatalf("result = %+v", res)
	}
	for _, data := range arts {
		d := digest(data)
		b, err := e.st.Open(context.Background(), d)
		if err != nil {
			t.Fatalf("artifact %s not stored: %v", d, err)
		}
		got, _ := io.ReadAll(b.File)
		b.File.Close()
		if !bytes.Equal(got, data) {
			t.Fatal("stored bytes differ")
		}
	}
	cfg, err := e.sled.Config()
	if err != nil || cfg.Generation != 1 || len(cfg.Artifacts) != 2 {
		t.Fatalf("local config = %+v, %v", cfg, err)
	}
	// The same archive again changes nothing.
	again, err := e.upload(t, zip)
	if err != nil || again.Status != depot.UploadAlreadyExists {
		t.Fatalf("second upload = %+v, %v", again, err)
	}
	if g, _ := e.sled.Generation(context.Background()); *g != 1 {
		t.Fatalf("generation moved to %d", *g)
	}
	if f := tempFiles(t, e.mirrors); len(f) != 0 {
		t.Fatalf("spool left behind: %v", f)
	}
}

func TestCoordinator_Upload_ConflictingVersion(t *testing.T) {
	e := newCoordEnv(t)
	zip1, root1, _ := repoArchive(t, "2.0.0", 1)
	zip2, root2, _ := repoArchive(t, "2.0.0", 2)
	e.coord.AddTrustRoot(t.Context(), root1, "test", nil)
	e.coord.AddTrustRoot(t.Context(), root2, "test", nil)
	if _, err := e.upload(t, zip1); err != nil {
		t.Fatal(err)
	}
	_, err := e.upload(t, zip2)
	if !errors.Is(err, depot.ErrRepoConflict) || !strings.Contains(err.Error(), "2.0.0") {
		t.Fatalf("err = %v, want ErrRepoConflict naming the version", err)
	}
	if got := len(stored(t, e.st)); got != 2 {
		t.Fatalf("%d artifacts stored, want only the first repository's 2", got)
	}
}

func TestCoordinator_Upload_RefusedLeavesNothing(t *testing.T) {
	e := newCoordEnv(t)
	b, _ := repoBuilder(t, "3.0.0", 1)
	zip, root := b.Archive(tuftest.Zip), b.RootJSON()
	_, otherRoot, _ := repoArchive(t, "9.9.9", 9)
	e.coord.AddTrustRoot(t.Context(), otherRoot, "test", nil)
	_, err := e.upload(t, zip)
	if !errors.Is(err, depot.ErrRepoInvalid) {
		t.Fatalf("untrusted root: err = %v, want ErrRepoInvalid", err)
	}
	// Tampered target content: verification passes, staging fails on the
	// hash; everything staged so far must go.
	e.coord.AddTrustRoot(t.Context(), root, "test", nil)
	b.EditFiles(func(es []tuftest.Entry) []tuftest.Entry {
		for i, e := range es {
			if strings.HasSuffix(e.Name, "sp-3.0.0.bin") {
				d := append([]byte(nil), e.Data...)
				d[len(d)/2] ^= 0xff
				es[i].Data = d
			}
		}
		return es
	})
	bad := b.Archive(tuftest.Zip)
	_, err = e.upload(t, bad)
	if !errors.Is(err, depot.ErrRepoInvalid) {
		t.Fatalf("tampered: err = %v, want ErrRepoInvalid", err)
	}
	if got := stored(t, e.st); len(got) != 0 {
		t.Fatalf("refused uploads left %d artifacts", len(got))
	}
	if f := tempFiles(t, e.mirrors); len(f) != 0 {
		t.Fatalf("spool left behind: %v", f)
	}
	if repos, _ := e.cat.Repos(t.Context()); len(repos) != 0 {
		t.Fatalf("catalog has %d repositories", len(repos))
	}
	sagas, _ := e.cat.Sagas(t.Context())
	for _, s := range sagas {
		if s.Step != depot.StepUndone || s.Error == "" {
			t.Fatalf("saga %+v, want undone with an error", s)
		}
	}
}

func TestCoordinator_DeleteRepo_DropsOnlyUnsharedArtifacts(t *testing.T) {
	e := newCoordEnv(t)
	zip1, root, arts1 := repoArchive(t, "4.0.0", 4)
	e.coord.AddTrustRoot(t.Context(), root, "test", nil)
	if _, err := e.upload(t, zip1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.coord.DeleteRepo(context.Background(), "4.0.0", nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.sled.Config()
	if cfg.Generation != 2 || len(cfg.Artifacts) != 0 {
		t.Fatalf("config after delete = %+v", cfg)
	}
	waitFor(t, func() bool { return len(stored(t, e.st)) == 0 })
	_ = arts1
	if _, err := e.coord.DeleteRepo(context.Background(), "4.0.0", nil); !errors.Is(err, depot.ErrRepoNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestCoordinator_Recover_UndoesSagaStoppedBeforeRecord(t *testing.T) {
	e := newCoordEnv(t)
	_, _, arts := repoArchive(t, "5.0.0", 5)
	// What a crash in the stage step leaves: a saga naming staged
	// artifacts, and those artifacts in the store.
	var staged []store.Digest
	for _, data := range arts {
		d := digest(data)
		if _, err := e.st.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
		staged = append(staged, d)
	}
	if err := e.cat.BeginSaga(t.Context(), depot.Saga{ID: "crashed", Step: depot.StepStage, FileName: "x.zip", Staged: staged}); err != nil {
		t.Fatal(err)
	}
	n, err := e.coord.Recover(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	if got := stored(t, e.st); len(got) != 0 {
		t.Fatalf("undo left %d artifacts", len(got))
	}
	// Running it again does nothing.
	if n, err := e.coord.Recover(context.Background()); err != nil || n != 0 {
		t.Fatalf("second Recover = %d, %v", n, err)
	}
	st := e.coord.Recovery()
	if st.TotalUndone != 1 || st.Last == nil || st.Last.Found != 0 || st.Passes < 3 {
		t.Fatalf("recovery status = %+v (last %+v)", st, st.Last)
	}
}

func TestCoordinator_AddTrustRoot_RejectsNonRoot(t *testing.T) {
	e := newCoordEnv(t)
	for _, doc := range [][]byte{nil, []byte("{}"), []byte(`{"signed":{"_type":"targets"}}`)} {
		if _, _, err := e.coord.AddTrustRoot(t.Context(), doc, "test", nil); !errors.Is(err, depot.ErrTrustRootInvalid) {
			t.Errorf("AddTrustRoot(%q) err = %v", doc, err)
		}
	}
	_ = tuf.ErrInvalid
}

func TestCoordinator_Upload_ConcurrentDuplicates(t *testing.T) {
	e := newCoordEnv(t)
	zip, root, arts := repoArchive(t, "6.0.0", 6)
	e.coord.AddTrustRoot(t.Context(), root, "test", nil)
	const n = 6
	results := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			res, err := e.upload(t, zip)
			errs <- err
			results <- res.Status
		}()
	}
	inserted := 0
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if <-results == depot.UploadInserted {
			inserted++
		}
	}
	if inserted != 1 {
		t.Fatalf("%d uploads inserted, want exactly 1", inserted)
	}
	if repos, _ := e.cat.Repos(t.Context()); len(repos) != 1 {
		t.Fatalf("%d repositories recorded", len(repos))
	}
	e.sled.Reconcile()
	got := stored(t, e.st)
	if len(got) != len(arts) {
		t.Fatalf("%d artifacts stored, want %d", len(got), len(arts))
	}
	if g, _ := e.sled.Generation(context.Background()); *g != 1 {
		t.Fatalf("generation %d, want 1", *g)
	}
	if f := tempFiles(t, e.mirrors); len(f) != 0 {
		t.Fatalf("spool left behind: %v", f)
	}
}
