package depot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"depot/store"
)

// An upload is a saga whose log is kept in the catalog: spool → verify →
// stage → record → replicate. Each step is written before it starts, so
// recovery after a crash knows how far the upload got: before record, the
// upload is undone (spool removed, staged artifacts that no repository
// references deleted); from record on, it carries on (replication).
const (
	StepSpool     = "spool"
	StepVerify    = "verify"
	StepStage     = "stage"
	StepRecorded  = "recorded"
	StepDone      = "done"   // recorded and handed to replication
	StepUndone    = "undone" // failed or crashed before record; cleaned up
	sagaKeepLimit = 256      // finished sagas kept for inspection
)

// Saga is one upload's log entry.
type Saga struct {
	ID            string         `json:"id"`
	Step          string         `json:"step"`
	FileName      string         `json:"file_name"`
	SpoolPath     string         `json:"spool_path,omitempty"`
	ArchiveHash   *store.Digest  `json:"archive_hash,omitempty"`
	SystemVersion string         `json:"system_version,omitempty"`
	Staged        []store.Digest `json:"staged,omitempty"` // written before staging starts
	// Present is what of Staged the sled already held (or a PUT wrote)
	// when it was staged: undo keeps it.
	Present []store.Digest `json:"present,omitempty"`
	// Owner is the coordinator running the saga (Presence.ID); when its
	// lease is gone another coordinator adopts the saga (recover.go).
	Owner string `json:"owner,omitempty"`
	// Sled is the sled the saga stages on: its coordinator's own sled.
	Sled string `json:"sled,omitempty"`
	// Cleanup names the sled whose spool and staged artifacts an undo by
	// another coordinator could not reach: that sled's coordinator removes
	// them and clears it (recover.go).
	Cleanup string    `json:"cleanup,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	Error   string    `json:"error,omitempty"`
}

// Finished reports whether the saga needs no recovery.
func (s Saga) Finished() bool { return s.Step == StepDone || s.Step == StepUndone }

// ErrSagaAdopted means another coordinator took the saga over: this one's
// lease lapsed and it must not carry on.
var ErrSagaAdopted = errors.New("the upload was taken over by another coordinator")

func (c *Catalog) self() string {
	c.ownerMu.Lock()
	defer c.ownerMu.Unlock()
	return c.owner
}

// BeginSaga records a new saga, owned by this coordinator.
func (c *Catalog) BeginSaga(ctx context.Context, s Saga) error {
	s.Started, s.Updated = time.Now().UTC(), time.Now().UTC()
	s.Owner = c.self()
	return c.kv.update(ctx, func(tx kvTx) error {
		v, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketSagas).Put([]byte(s.ID), v); err != nil {
			return err
		}
		return pruneSagas(tx)
	})
}

// UpdateSaga applies fn to the saga with this id and writes it back;
// ErrSagaAdopted if another coordinator owns it now.
func (c *Catalog) UpdateSaga(ctx context.Context, id string, fn func(*Saga)) error {
	return c.kv.update(ctx, func(tx kvTx) error { return c.updateSaga(tx, id, fn) })
}

// AdoptSaga makes this coordinator the owner of saga id if from still owns
// it and it is unfinished; ok is false when another coordinator adopted it
// first or it finished meanwhile.
func (c *Catalog) AdoptSaga(ctx context.Context, id, from string) (s Saga, ok bool, err error) {
	self := c.self()
	err = c.kv.update(ctx, func(tx kvTx) error {
		ok = false
		s, err = getSaga(tx, id)
		if err != nil || s.Owner != from || s.Finished() {
			return err
		}
		s.Owner, s.Updated = self, time.Now().UTC()
		v, err := json.Marshal(s)
		if err != nil {
			return err
		}
		ok = true
		return tx.Bucket(bucketSagas).Put([]byte(id), v)
	})
	return s, ok, err
}

// EndSagaCleanup clears saga id's Cleanup once sled's coordinator has
// removed what the saga left there; the saga may belong to another
// coordinator.
func (c *Catalog) EndSagaCleanup(ctx context.Context, id, sled string) error {
	return c.kv.update(ctx, func(tx kvTx) error {
		s, err := getSaga(tx, id)
		if err != nil || s.Cleanup != sled {
			return err
		}
		s.Cleanup, s.Updated = "", time.Now().UTC()
		v, err := json.Marshal(s)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSagas).Put([]byte(id), v)
	})
}

func getSaga(tx kvTx, id string) (Saga, error) {
	var s Saga
	v := tx.Bucket(bucketSagas).Get([]byte(id))
	if v == nil {
		return s, fmt.Errorf("saga %s not found", id)
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return s, fmt.Errorf("decode saga %s: %w", id, err)
	}
	return s, nil
}

func (c *Catalog) updateSaga(tx kvTx, id string, fn func(*Saga)) error {
	b := tx.Bucket(bucketSagas)
	s, err := getSaga(tx, id)
	if err != nil {
		return err
	}
	if self := c.self(); self != "" && s.Owner != "" && s.Owner != self {
		return fmt.Errorf("saga %s: %w (%s)", id, ErrSagaAdopted, s.Owner)
	}
	fn(&s)
	s.Updated = time.Now().UTC()
	nv, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return b.Put([]byte(id), nv)
}

// Sagas returns every saga in the log, oldest first.
func (c *Catalog) Sagas(ctx context.Context) ([]Saga, error) {
	var out []Saga
	err := c.kv.view(ctx, func(tx kvTx) error {
		return tx.Bucket(bucketSagas).ForEach(func(k, v []byte) error {
			var s Saga
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decode saga %s: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, err
}

// pruneSagas drops the oldest finished sagas beyond sagaKeepLimit, never
// one whose cleanup is pending.
func pruneSagas(tx kvTx) error {
	b := tx.Bucket(bucketSagas)
	type fin struct {
		id      []byte
		started time.Time
	}
	var done []fin
	if err := b.ForEach(func(k, v []byte) error {
		var s Saga
		if json.Unmarshal(v, &s) == nil && s.Finished() && s.Cleanup == "" {
			done = append(done, fin{append([]byte(nil), k...), s.Started})
		}
		return nil
	}); err != nil {
		return err
	}
	if len(done) <= sagaKeepLimit {
		return nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].started.Before(done[j].started) })
	for _, f := range done[:len(done)-sagaKeepLimit] {
		if err := b.Delete(f.id); err != nil {
			return err
		}
	}
	return nil
}
