package depot_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"depot/depot"
	"depot/store"
)

// Replication status says when the catalog could not be read, instead of
// reporting generation 0 as if it were true.
func TestReplicator_Status_ReportsCatalogError(t *testing.T) {
	r := newRack(t, 0, 1)
	if st := r.rep.Status(t.Context()); st.CatalogError != "" {
		t.Fatalf("catalog error with a healthy catalog: %q", st.CatalogError)
	}
	r.coord.cat.Close()
	if st := r.rep.Status(t.Context()); st.CatalogError == "" {
		t.Fatal("a closed catalog is not reported")
	}
}

// countingPeer counts fetches that start after closed is set.
type countingPeer struct {
	closed *atomic.Bool
	late   *atomic.Int32
}

func (p countingPeer) Fetch(ctx context.Context, baseURL string, d store.Digest) (io.ReadCloser, int64, error) {
	if p.closed.Load() {
		p.late.Add(1)
	}
	return io.NopCloser(strings.NewReader("")), 0, nil
}

// Stat says every source holds an empty artifact.
func (p countingPeer) Stat(ctx context.Context, baseURL string, d store.Digest) (int64, error) {
	return 0, nil
}

// A copy requested while the sled closes either starts before Close waits
// for jobs or is refused: no job runs after Close returned. (The race
// detector also reports an unordered WaitGroup Add and Wait.)
func TestSled_CopyDuringClose_NoJobAfterClose(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	var closed atomic.Bool
	var late atomic.Int32
	var d store.Digest
	d[0] = 1
	for range 200 {
		closed.Store(false)
		sled, err := depot.NewSled(context.Background(), depot.SledOptions{
			Store: e.st, Logger: slog.New(slog.DiscardHandler), Peer: countingPeer{&closed, &late},
		})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sled.CopyFromDepot(context.Background(), d, nil, "http://127.0.0.1:1")
			if err != nil && !errors.Is(err, depot.ErrClosed) {
				t.Errorf("copy: %v", err)
			}
		}()
		sled.Close()
		closed.Store(true)
		wg.Wait()
	}
	if n := late.Load(); n > 0 {
		t.Fatalf("%d copy jobs ran after Close returned", n)
	}
}
