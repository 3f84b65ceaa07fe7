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
// the delete pending: it is done before that mirror serves again, as long
// as this process runs. Pending deletes are not written down, so a restart
// forgets them and d comes back from that mirror (see mirror.pending).
// Delete fails only when no mirror could remove d, and the delete stays
// pending then too.
func (s *Store) Delete(ctx context.Context, d Digest) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.locks[d[0]].Lock()
	defer s.locks[d[0]].Unlock()
	var errs []error
	for _, m := range s.mirrors {
		if err := m.remove(d); err != nil {
			if m.isHealthy() {
				m.fail("delete", err)
			}
			m.deferDelete(d)
			errs = append(errs, fmt.Errorf("mirror %s: %w", m.root, err))
		}
	}
	if len(errs) == len(s.mirrors) {
		return fmt.Errorf("delete %s: %w", d, noMirrorErr(errs))
	}
	if len(errs) > 0 {
		s.log.Warn("delete deferred on failing mirrors", "digest", d, "err", errors.Join(errs...))
	}
	return nil
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
	if err := db.Batch(func(tx *bolt.Tx) error {
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
	return nil
}
