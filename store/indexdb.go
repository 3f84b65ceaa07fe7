package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bucketTombstones holds, on each mirror that did a delete, the digests of
// deletes another mirror missed (digest → unix nanoseconds of the delete).
// They are applied to every mirror at start-up and when a mirror comes
// back, so a delete survives restarts; they are cleared once every mirror
// is healthy and has done them. A Put of the digest clears its tombstone.
var bucketTombstones = []byte("tombstones")

// errIndexCorrupt marks an index that bbolt cannot read: it failed its own
// checks or panicked while being read.
var errIndexCorrupt = errors.New("index is unreadable")

// openIndex opens, locks and reads the mirror's index. A corrupt index
// (bbolt's own checks, or a panic while it is walked) is reported as
// errIndexCorrupt and never panics the process.
func (m *mirror) openIndex() (db *bolt.DB, index map[Digest]record, err error) {
	path := filepath.Join(m.root, indexFile)
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				closeQuietly(db)
			}
			db, index = nil, nil
			err = fmt.Errorf("open index of mirror %s: %w (bbolt: %v)", m.root, errIndexCorrupt, r)
		}
	}()
	opts := &bolt.Options{Timeout: m.lockTimeout}
	if ifs, ok := m.fs.(IndexFS); ok {
		opts.OpenFile = ifs.OpenIndex
	}
	db, err = bolt.Open(path, 0o600, opts)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, nil, fmt.Errorf("open index of mirror %s: %w", m.root, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrInvalidMapping):
		return nil, nil, fmt.Errorf("open index of mirror %s: %w: %w", m.root, errIndexCorrupt, err)
	case err != nil:
		return nil, nil, fmt.Errorf("open index of mirror %s: %w", m.root, err)
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	ready := false
	if err := db.View(func(tx *bolt.Tx) error {
		ready = tx.Bucket(bucketArtifacts) != nil && tx.Bucket(bucketTombstones) != nil
		return nil
	}); err != nil {
		closeQuietly(db)
		return nil, nil, fmt.Errorf("read index of mirror %s: %w: %w", m.root, errIndexCorrupt, err)
	}
	// A write transaction (and its fsync) only when a bucket is missing.
	if !ready {
		if err := m.indexUpdate(db, func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists(bucketArtifacts); err != nil {
				return err
			}
			_, err := tx.CreateBucketIfNotExists(bucketTombstones)
			return err
		}); err != nil {
			closeQuietly(db)
			return nil, nil, fmt.Errorf("init index of mirror %s: %w", m.root, err)
		}
	}
	if err := db.View(func(tx *bolt.Tx) error {
		// Sized from the file (an entry takes ~72 bytes of a page), so
		// the map rarely grows while it is filled.
		index = make(map[Digest]record, tx.Size()/128)
		return tx.Bucket(bucketArtifacts).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(v)
			if err != nil || len(k) != len(Digest{}) {
				m.log.Warn("dropping malformed index entry", "mirror", m.root)
				return nil
			}
			index[Digest(k)] = r
			return nil
		})
	}); err != nil {
		closeQuietly(db)
		return nil, nil, fmt.Errorf("read index of mirror %s: %w: %w", m.root, errIndexCorrupt, err)
	}
	return db, index, nil
}

// closeQuietly closes an index that may be broken; a panic in Close is
// contained too.
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	_ = db.Close()
}

// moveIndexAside renames an unreadable index out of the way (kept for
// whoever wants to look at it) so a fresh one can be built from the files.
func (m *mirror) moveIndexAside() (string, error) {
	path := filepath.Join(m.root, indexFile)
	aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
	if err := m.fs.Rename(path, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("move unreadable index of mirror %s aside: %w", m.root, err)
	}
	if err := syncDir(m.fs, m.root); err != nil {
		return "", fmt.Errorf("fsync %s: %w", m.root, err)
	}
	return aside, nil
}

// indexUpdate runs fn in a write transaction of db, failing first as the
// mirror's FS says (IndexFS) so tests reach the index's failure paths.
func (m *mirror) indexUpdate(db *bolt.DB, fn func(tx *bolt.Tx) error) error {
	if ifs, ok := m.fs.(IndexFS); ok {
		if err := ifs.IndexUpdate(); err != nil {
			return err
		}
	}
	return db.Update(fn)
}

// indexBatch is indexUpdate through bbolt's Batch, for the many small
// updates of concurrent writes.
func (m *mirror) indexBatch(db *bolt.DB, fn func(tx *bolt.Tx) error) error {
	if ifs, ok := m.fs.(IndexFS); ok {
		if err := ifs.IndexUpdate(); err != nil {
			return err
		}
	}
	return db.Batch(fn)
}

// putTombstones records deletes other mirrors missed.
func (m *mirror) putTombstones(ds []Digest) error {
	m.mu.RLock()
	db := m.db
	m.mu.RUnlock()
	if db == nil {
		return ErrClosed
	}
	now := time.Now().UnixNano()
	var v [8]byte
	for i := range v {
		v[i] = byte(uint64(now) >> (56 - 8*i))
	}
	return m.indexBatch(db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTombstones)
		for _, d := range ds {
			if err := b.Put(d[:], v[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// tombstones returns the digests of the deletes recorded on the mirror.
func (m *mirror) tombstones() ([]Digest, error) {
	m.mu.RLock()
	db := m.db
	m.mu.RUnlock()
	if db == nil {
		return nil, ErrClosed
	}
	var out []Digest
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTombstones).ForEach(func(k, _ []byte) error {
			if len(k) == len(Digest{}) {
				out = append(out, Digest(k))
			}
			return nil
		})
	})
	return out, err
}

// clearTombstones drops the given tombstones: every mirror has done them.
func (m *mirror) clearTombstones(ds []Digest) error {
	m.mu.RLock()
	db := m.db
	m.mu.RUnlock()
	if db == nil || len(ds) == 0 {
		return nil
	}
	return m.indexBatch(db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTombstones)
		for _, d := range ds {
			if err := b.Delete(d[:]); err != nil {
				return err
			}
		}
		return nil
	})
}
