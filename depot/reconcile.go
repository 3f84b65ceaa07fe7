package depot

import (
	"context"
	"sync"
	"time"

	"depot/store"
	"depot/store/trigger"
)

// ReconcileStatus is what the delete reconciler did in its last pass and
// since start-up.
type ReconcileStatus struct {
	Running      bool      `json:"running"`
	LastStarted  time.Time `json:"last_started,omitzero"`
	LastFinished time.Time `json:"last_finished,omitzero"`
	Generation   *uint64   `json:"generation"` // of the config the last pass started with
	Found        int       `json:"found"`      // stored artifacts outside the config
	Deleted      int       `json:"deleted"`
	Skipped      int       `json:"skipped"` // wanted again by the time they came up
	Failed       int       `json:"failed"`
	LastError    string    `json:"last_error,omitempty"`
	Passes       int       `json:"passes"`
	TotalDeleted int       `json:"total_deleted"`
	TotalFailed  int       `json:"total_failed"`
}

// reconcileStore is what the delete reconciler needs from the store.
type reconcileStore interface {
	List(ctx context.Context) ([]store.Info, error)
	Delete(ctx context.Context, d store.Digest) error
}

// reconciler state; mu guards st.
type reconciler struct {
	kick trigger.Trigger
	mu   sync.Mutex
	st   ReconcileStatus
}

// trigger asks for a pass; requests while one is queued fold into it.
func (r *reconciler) trigger() {
	r.kick.Fire()
}

func (r *reconciler) status() ReconcileStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (s *Sled) reconcileLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.rec.kick.C():
		}
		s.Reconcile()
	}
}

// Reconcile runs one delete pass now: every stored artifact outside the
// config is removed, except those an upload has protected (Protect). The
// config is read again just before each unlink, with the config lock held
// across it, so a config that arrives mid-pass wins. An unmanaged sled
// deletes nothing. Temp files of writes in flight are never touched: only
// indexed artifacts are listed. Safe to run alongside writes and config
// changes; the background loop runs it after every config change and after
// a write whose artifact the config no longer lists. Two passes at once
// both delete correctly, but the status shows whichever finished last.
func (s *Sled) Reconcile() ReconcileStatus {
	ctx := s.ctx
	var st reconcileStore = s.st
	r := &s.rec
	r.mu.Lock()
	r.st.Running, r.st.LastStarted = true, time.Now()
	r.st.Found, r.st.Deleted, r.st.Skipped, r.st.Failed, r.st.LastError = 0, 0, 0, 0, ""
	r.mu.Unlock()
	s.mu.RLock()
	var gen *uint64
	if s.managed {
		g := s.cfg.Generation
		gen = &g
	}
	startWanted := s.wanted
	s.mu.RUnlock()

	var found, deleted, skipped, failed int
	var lastErr string
	all, err := st.List(ctx)
	if err != nil {
		lastErr = err.Error()
	}
	for _, info := range all {
		if ctx.Err() != nil {
			break
		}
		s.mu.RLock()
		if !s.managed {
			s.mu.RUnlock()
			break
		}
		if s.protected[info.Digest] > 0 {
			s.mu.RUnlock()
			skipped++ // staged by an upload not yet recorded
			continue
		}
		if s.wanted[info.Digest] {
			s.mu.RUnlock()
			if !startWanted[info.Digest] {
				skipped++ // a config that arrived mid-pass wants it
			}
			continue
		}
		found++
		err := st.Delete(ctx, info.Digest)
		s.mu.RUnlock()
		if err != nil {
			failed++
			lastErr = err.Error()
			s.log.Error("reconciler could not delete artifact", "digest", info.Digest, "err", err)
			continue
		}
		deleted++
		s.log.Info("reconciler deleted artifact outside the config", "digest", info.Digest)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Running, r.st.LastFinished, r.st.Generation = false, time.Now(), gen
	r.st.Found, r.st.Deleted, r.st.Skipped, r.st.Failed, r.st.LastError = found, deleted, skipped, failed, lastErr
	r.st.Passes++
	r.st.TotalDeleted += deleted
	r.st.TotalFailed += failed
	return r.st
}
