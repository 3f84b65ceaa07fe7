package depot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Recover finishes what crashed uploads left: a saga that stopped before
// record is undone (spool removed, staged artifacts that no repository
// references deleted); one that reached record is marked done (its
// artifacts are in the wanted set, replication carries on). Sagas this
// process is running are left alone, so Recover may run at any time. It
// returns the number of sagas it finished.
func (c *Coordinator) Recover(ctx context.Context) (n int, err error) {
	c.recoverMu.Lock()
	defer c.recoverMu.Unlock()
	pass := RecoveryPass{Started: time.Now().UTC()}
	defer func() {
		pass.Finished = time.Now().UTC()
		if err != nil {
			pass.Error = err.Error()
			pass.Failed++
		}
		c.mu.Lock()
		c.recovery.Last = &pass
		c.recovery.Passes++
		c.recovery.TotalUndone += pass.Undone
		c.recovery.TotalCarried += pass.Carried
		c.recovery.TotalFailed += pass.Failed
		c.mu.Unlock()
	}()
	sagas, err := c.cat.Sagas(ctx)
	if err != nil {
		return 0, fmt.Errorf("read saga log: %w", err)
	}
	for _, s := range sagas {
		c.mu.Lock()
		busy := c.running[s.ID]
		c.mu.Unlock()
		if s.Finished() {
			if s.Cleanup != "" && s.Cleanup == c.selfSled && !busy {
				if err := c.cleanUp(ctx, s); err != nil {
					return n, err
				}
			}
			continue
		}
		pass.Found++
		if busy {
			pass.Skipped++
			continue
		}
		if s.Owner != c.presence.ID() {
			// Another coordinator's saga: leave it while its lease lives,
			// adopt it once the lease is gone (a bbolt catalog has no other
			// live coordinator, so its sagas are a previous process's).
			if s.Owner != "" {
				alive, err := c.presence.Alive(ctx, s.Owner)
				if err != nil {
					return n, fmt.Errorf("saga %s: is its coordinator alive: %w", s.ID, err)
				}
				if alive {
					pass.Skipped++
					continue
				}
			}
			adopted, ok, err := c.cat.AdoptSaga(ctx, s.ID, s.Owner)
			if err != nil {
				return n, err
			}
			if !ok {
				pass.Skipped++ // adopted by another coordinator, or finished
				continue
			}
			if s.Owner != "" {
				c.log.Info("upload saga adopted", "saga", s.ID, "from", s.Owner, "step", s.Step)
				pass.Adopted++
			}
			s = adopted
		}
		if s.Step == StepRecorded {
			if err := c.cat.UpdateSaga(ctx, s.ID, func(s *Saga) { s.Step = StepDone }); err != nil {
				return n, err
			}
			c.log.Info("upload saga recovered: recorded, replication carries on", "saga", s.ID, "system_version", s.SystemVersion)
			pass.Carried++
			n++
			continue
		}
		if err := c.undo(ctx, s, errors.New("interrupted before record (daemon restarted)")); err != nil {
			return n, err
		}
		c.log.Info("upload saga recovered: undone", "saga", s.ID, "step", s.Step, "file_name", s.FileName)
		pass.Undone++
		n++
	}
	if n > 0 {
		c.wantedChanged(ctx)
	}
	return n, nil
}

// RecoveryPass is what one saga recovery pass did.
type RecoveryPass struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Found    int       `json:"found"`   // unfinished sagas in the log
	Undone   int       `json:"undone"`  // stopped before record: cleaned up
	Carried  int       `json:"carried"` // stopped after record: marked done, replication carries on
	Skipped  int       `json:"skipped"` // running in this process or owned by a live coordinator
	Adopted  int       `json:"adopted"` // taken over from a coordinator whose lease is gone
	Failed   int       `json:"failed"`
	Error    string    `json:"error,omitempty"`
}

// RecoveryStatus is saga recovery's last pass and its totals since start-up.
type RecoveryStatus struct {
	Last         *RecoveryPass `json:"last_pass"`
	Passes       int           `json:"passes"`
	TotalUndone  int           `json:"total_undone"`
	TotalCarried int           `json:"total_carried"`
	TotalFailed  int           `json:"total_failed"`
}

// Recovery returns what saga recovery did.
func (c *Coordinator) Recovery() RecoveryStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.recovery
	if st.Last != nil {
		last := *st.Last
		st.Last = &last
	}
	return st
}

// undo removes what a saga left before record and marks it undone: what
// it staged, except what the sled held already (Saga.Present) or a PUT
// wrote meanwhile. A live
// saga drops its own protections before calling (after a crash there are
// none).
func (c *Coordinator) undo(ctx context.Context, s Saga, cause error) error {
	foreign := s.Sled != "" && s.Sled != c.selfSled
	if foreign {
		// Spooled and staged on another coordinator's sled: its spool path
		// is not ours, and an unmanaged sled (generation 0) has no
		// reconciler pass that would delete what was staged. That sled's
		// coordinator cleans up (cleanUp).
		c.log.Info("undo leaves the spool and staged artifacts to their sled's coordinator", "saga", s.ID, "sled", s.Sled)
	} else if err := c.dropLeftovers(ctx, s); err != nil {
		return err
	}
	return c.cat.UpdateSaga(ctx, s.ID, func(s *Saga) {
		s.Step = StepUndone
		if foreign {
			s.Cleanup = s.Sled
		}
		if s.Error == "" {
			s.Error = cause.Error()
		}
	})
}

// dropLeftovers removes a saga's spool and what it staged fresh on the
// local sled that no repository wants.
func (c *Coordinator) dropLeftovers(ctx context.Context, s Saga) error {
	if s.SpoolPath != "" {
		if err := os.Remove(s.SpoolPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("remove upload spool", "path", s.SpoolPath, "err", err)
		}
	}
	if len(s.Staged) == 0 {
		return nil
	}
	w, err := c.cat.Wanted(ctx)
	if err != nil {
		return err
	}
	if _, err := c.local.DropUnwanted(ctx, fresh(s), w.Artifacts); err != nil {
		return fmt.Errorf("undo saga %s: %w", s.ID, err)
	}
	return nil
}

// cleanUp removes what a saga undone by another coordinator left on this
// coordinator's sled, then clears the saga's Cleanup.
func (c *Coordinator) cleanUp(ctx context.Context, s Saga) error {
	if err := c.dropLeftovers(ctx, s); err != nil {
		return err
	}
	if err := c.cat.EndSagaCleanup(ctx, s.ID, c.selfSled); err != nil {
		return fmt.Errorf("saga %s: %w", s.ID, err)
	}
	c.log.Info("removed what an upload undone by another coordinator left on this sled", "saga", s.ID)
	return nil
}
