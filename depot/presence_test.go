package depot_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"depot/depot"
	"depot/store"
)

func join(t *testing.T, cat *depot.Catalog, ttl time.Duration) depot.Presence {
	t.Helper()
	p, err := cat.Join(t.Context(), depot.PresenceInfo{SledID: "s"}, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPresence_OneLeaderHandsOver: of two coordinators one leads; when it
// leaves, the other leads, and each sees the other alive only while it is.
func TestPresence_OneLeaderHandsOver(t *testing.T) {
	prefix := newPrefix(t)
	c1, c2 := openEtcdCatalog(t, prefix), openEtcdCatalog(t, prefix)
	p1, p2 := join(t, c1, 2*time.Second), join(t, c2, 2*time.Second)
	l1, err := p1.Lead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan context.Context, 1)
	go func() {
		if l, err := p2.Lead(t.Context()); err == nil {
			won <- l
		}
	}()
	select {
	case <-won:
		t.Fatal("two coordinators lead at once")
	case <-time.After(time.Second):
	}
	if id, err := p2.Leader(t.Context()); err != nil || id != p1.ID() {
		t.Fatalf("leader = %q, %v; want %s", id, err, p1.ID())
	}
	if alive, err := p2.Alive(t.Context(), p1.ID()); err != nil || !alive {
		t.Fatalf("alive = %v, %v", alive, err)
	}
	p1.Close()
	select {
	case <-l1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the leader that left still leads")
	}
	select {
	case <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("the other coordinator did not take the lead")
	}
	if alive, err := p2.Alive(t.Context(), p1.ID()); err != nil || alive {
		t.Fatalf("a coordinator that left is alive = %v, %v", alive, err)
	}
}

// TestRecover_AdoptsSagaOfGoneCoordinator: a saga of a live coordinator is
// left alone; once its lease is gone another coordinator adopts and undoes
// it, and the first can no longer move it.
func TestRecover_AdoptsSagaOfGoneCoordinator(t *testing.T) {
	prefix := newPrefix(t)
	c1, c2 := openEtcdCatalog(t, prefix), openEtcdCatalog(t, prefix)
	p1 := join(t, c1, 2*time.Second)
	if err := c1.BeginSaga(t.Context(), depot.Saga{ID: "s1", Step: depot.StepVerify, FileName: "r.zip", Sled: "sled-a"}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(t.Context(), store.Options{Mirrors: []string{filepath.Join(dir, "m2a")}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	sled, err := depot.NewSled(t.Context(), depot.SledOptions{Store: st, Logger: log, Peer: newFakePeer()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sled.Close(); st.Close() })
	coord, err := depot.NewCoordinator(t.Context(), depot.CoordinatorOptions{
		Catalog: c2, Local: sled, Spool: st, Logger: log, Presence: join(t, c2, 2*time.Second), SelfSledID: "sled-b",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := coord.Recover(t.Context()); err != nil || n != 0 {
		t.Fatalf("recover with the owner alive = %d, %v", n, err)
	}
	p1.Close()
	if n, err := coord.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("recover with the owner gone = %d, %v", n, err)
	}
	if last := coord.Recovery().Last; last == nil || last.Adopted != 1 || last.Undone != 1 {
		t.Fatalf("recovery pass = %+v", last)
	}
	sagas, err := c2.Sagas(t.Context())
	if err != nil || len(sagas) != 1 || sagas[0].Step != depot.StepUndone || sagas[0].Owner == p1.ID() {
		t.Fatalf("sagas = %+v, %v", sagas, err)
	}
	if err := c1.UpdateSaga(t.Context(), "s1", func(s *depot.Saga) { s.Step = depot.StepRecorded }); !errors.Is(err, depot.ErrSagaAdopted) {
		t.Fatalf("the first coordinator moved an adopted saga: %v", err)
	}
}
