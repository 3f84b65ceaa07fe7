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
		if s.Finished() {
			continue
		}
		pass.Found++
		c.mu.Lock()
		busy := c.running[s.ID]
		c.mu.Unlock()
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
	if s.SpoolPath != "" {
		if err := os.Remove(s.SpoolPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("remove upload spool", "path", s.SpoolPath, "err", err)
		}
	}
	if len(s.Staged) > 0 && s.Sled != "" && s.Sled != c.selfSled {
		// Staged on another coordinator's sled: that sled's reconciler
		// deletes what no repository wants once no live saga protects it.
		c.log.Info("undo leaves staged artifacts to their sled's reconciler", "saga", s.ID, "sled", s.Sled)
	} else if len(s.Staged) > 0 {
		w, err := c.cat.Wanted(ctx)
		if err != nil {
			return err
		}
		if _, err := c.local.DropUnwanted(ctx, fresh(s), w.Artifacts); err != nil {
			return fmt.Errorf("undo saga %s: %w", s.ID, err)
		}
	}
	return c.cat.UpdateSaga(ctx, s.ID, func(s *Saga) {
		s.Step = StepUndone
		if s.Error == "" {
			s.Error = cause.Error()
		}
	})
}
