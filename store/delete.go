package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Delete removes d from every mirror, healthy or not. Absent is not an
// error. A mirror that cannot remove it now is marked unhealthy and keeps
// the delete pending; the mirrors that did remove it record a tombstone in
// their index, so the delete is done before that mirror serves again, in
// this process or after a restart. Delete fails when no mirror could
// remove d, or when no mirror could record the tombstone of a delete
// another missed; the delete stays pending then too.
func (s *Store) Delete(ctx context.Context, d Digest) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.locks[d[0]].Lock()
	defer s.locks[d[0]].Unlock()
	var errs []error
	var done []*mirror
	for _, m := range s.mirrors {
		if err := m.remove(d); err != nil {
			if m.isHealthy() {
				m.fail("delete", err)
			}
			m.deferDelete(d)
			errs = append(errs, fmt.Errorf("mirror %s: %w", m.root, err))
			continue
		}
		done = append(done, m)
	}
	if len(errs) == len(s.mirrors) {
		return fmt.Errorf("delete %s: %w", d, noMirrorErr(errs))
	}
	if len(errs) == 0 {
		return nil
	}
	var busy error
	for _, e := range errs {
		if isResourceErr(e) {
			busy = e
		}
	}
	s.log.Warn("delete deferred on failing mirrors", "digest", d, "err", errors.Join(errs...))
	s.tombMu.Lock()
	defer s.tombMu.Unlock()
	recorded := 0
	var terrs []error
	for _, m := range done {
		m.mu.RLock()
		opened := m.db != nil
		m.mu.RUnlock()
		if !opened {
			continue
		}
		if err := m.putTombstones([]Digest{d}); err != nil {
			m.fail("record missed delete", err)
			terrs = append(terrs, fmt.Errorf("mirror %s: %w", m.root, err))
			continue
		}
		recorded++
	}
	if recorded == 0 {
		return fmt.Errorf("delete %s: record the delete a failing mirror missed: %w", d, noMirrorErr(append(errs, terrs...)))
	}
	if busy != nil {
		// Done where it could be and recorded; the caller retries.
		return fmt.Errorf("delete %s: %w", d, busyErr(busy))
	}
	return nil
}

// applyTombstones makes every mirror's pending deletes include the
// tombstones any opened mirror holds: deletes some mirror missed, perhaps
// before a restart.
func (s *Store) applyTombstones() error {
	all := make(map[Digest]bool)
	for _, m := range s.mirrors {
		m.mu.RLock()
		opened := m.db != nil
		m.mu.RUnlock()
		if !opened {
			continue
		}
		ds, err := m.tombstones()
		if err != nil {
			return fmt.Errorf("read tombstones of mirror %s: %w", m.root, err)
		}
		for _, d := range ds {
			all[d] = true
		}
	}
	if len(all) == 0 {
		return nil
	}
	for _, m := range s.mirrors {
		for d := range all {
			m.deferDelete(d)
		}
	}
	return nil
}

// clearDoneTombstones drops every tombstone once every mirror is healthy
// and has done all its pending deletes: nothing is left to bring back.
func (s *Store) clearDoneTombstones() {
	s.tombMu.Lock()
	defer s.tombMu.Unlock()
	for _, m := range s.mirrors {
		m.mu.RLock()
		ok := m.healthy && len(m.pending) == 0
		m.mu.RUnlock()
		if !ok {
			return
		}
	}
	for _, m := range s.mirrors {
		ds, err := m.tombstones()
		if err == nil {
			err = m.clearTombstones(ds)
		}
		if err != nil {
			s.log.Warn("clear tombstones", "mirror", m.root, "err", err)
		}
	}
}

// deferDelete remembers a delete the mirror could not do now.
func (m *mirror) deferDelete(d Digest) {
	m.mu.Lock()
	if m.pending == nil {
		m.pending = make(map[Digest]bool)
	}
	m.pending[d] = true
	m.mu.Unlock()
}

// applyPending does the deletes the mirror missed. The caller holds no
// digest lock; each delete takes its own.
func (m *mirror) applyPending(locks *[256]sync.Mutex) error {
	m.mu.RLock()
	ds := make([]Digest, 0, len(m.pending))
	for d := range m.pending {
		ds = append(ds, d)
	}
	m.mu.RUnlock()
	for _, d := range ds {
		locks[d[0]].Lock()
		err := m.remove(d)
		locks[d[0]].Unlock()
		if err != nil {
			return err
		}
		m.mu.Lock()
		delete(m.pending, d)
		m.mu.Unlock()
	}
	return nil
}

// remove deletes d: the file first, then the entry, so a crash in between
// leaves an entry without a file, which start-up drops (the other order
// would leave a file that start-up adopts again). The caller holds the
// digest's lock.
func (m *mirror) remove(d Digest) error {
	path := m.artifactPath(d)
	err := m.fs.Remove(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if err == nil {
		if err := syncDir(m.fs, filepath.Dir(path)); err != nil {
			return fmt.Errorf("fsync folder of %s: %w", path, err)
		}
	}
	m.mu.RLock()
	db := m.db
	_, indexed := m.index[d]
	m.mu.RUnlock()
	if !indexed {
		return nil
	}
	if db == nil {
		return ErrClosed
	}
	if err := m.indexBatch(db, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketArtifacts).Delete(d[:])
	}); err != nil {
		return fmt.Errorf("unindex %s in mirror %s: %w", d, m.root, err)
	}
	m.mu.Lock()
	if old, ok := m.index[d]; ok {
		m.bytes -= old.Size
		delete(m.index, d)
	}
	m.mu.Unlock()
	m.changed(d)
	return nil
}
