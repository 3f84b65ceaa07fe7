package store

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit. A published copy needs three things durable before its
// write is acknowledged: the file's data (publish fsyncs it), its directory
// entry (an fsync of its fan-out folder) and its index record (a bbolt
// commit, itself two fdatasyncs). The index commit is shared between
// concurrent writes: a record waits for the next index commit, which
// writes every pending record in one transaction. Nothing waits for a
// timer: a lone write is committed at once, and under load a batch is
// whatever arrived during the previous one. Folder fsyncs are not shared:
// with 256 fan-out folders, concurrent writes almost never wait on the
// same one.

// maxBatch bounds one index transaction.
const maxBatch = 512

// batcher runs flush over whatever was submitted while the previous flush
// ran. Whoever finds it idle leads: it flushes the batch holding its own
// item, then hands what arrived meanwhile to a new goroutine and returns.
type batcher[T any] struct {
	mu      sync.Mutex
	pending []batchItem[T]
	running bool
}

type batchItem[T any] struct {
	v    T
	done chan error
}

// do submits v and returns the error of the flush that included it.
func (b *batcher[T]) do(v T, flush func([]T) error) error {
	it := batchItem[T]{v: v, done: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, it)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	if lead {
		b.flushNext(flush, true)
	}
	return <-it.done
}

// flushNext flushes batches until none is pending; once: flush one and hand
// the rest to a new goroutine (the caller is a writer awaiting its answer).
func (b *batcher[T]) flushNext(flush func([]T) error, once bool) {
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxBatch)
		if n == 0 {
			b.running = false
			b.pending = nil
			b.mu.Unlock()
			return
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()
		vs := make([]T, n)
		for i, it := range batch {
			vs[i] = it.v
		}
		err := flush(vs)
		for _, it := range batch {
			it.done <- err
		}
		if once {
			go b.flushNext(flush, false)
			return
		}
	}
}

// committer holds a mirror's batcher of index records.
type committer struct {
	index batcher[indexEntry]
}

type indexEntry struct {
	d   Digest
	rec record
}

// indexShared records d with rec in the mirror's index, in one transaction with
// whatever other records are pending, and returns once it is committed.
func (m *mirror) indexShared(d Digest, rec record) error {
	return m.commit.index.do(indexEntry{d, rec}, m.indexCommit)
}

// indexCommit writes every entry in one bbolt transaction (through the
// mirror's index fault hook, indexUpdate), then updates the in-memory
// index. A new copy supersedes an earlier delete of the same digest, so
// its tombstone goes in the same transaction. A failed commit fails every
// write of the batch on this mirror.
func (m *mirror) indexCommit(batch []indexEntry) error {
	m.mu.RLock()
	db := m.db
	m.mu.RUnlock()
	if db == nil {
		return ErrClosed
	}
	if err := m.indexUpdate(db, func(tx *bolt.Tx) error {
		b, tombs := tx.Bucket(bucketArtifacts), tx.Bucket(bucketTombstones)
		for _, e := range batch {
			if err := tombs.Delete(e.d[:]); err != nil {
				return err
			}
			if err := b.Put(e.d[:], e.rec.encode()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index %d artifacts in mirror %s: %w", len(batch), m.root, err)
	}
	ds := make([]Digest, len(batch))
	m.mu.Lock()
	for i, e := range batch {
		if old, ok := m.index[e.d]; ok {
			m.bytes -= old.Size
		}
		m.index[e.d] = e.rec
		m.bytes += e.rec.Size
		ds[i] = e.d
	}
	m.mu.Unlock()
	m.changed(ds...)
	return nil
}

// changed notes that the mirror's index changed for ds, or, with none,
// its health or whole index (see Store.ChangedSince).
func (m *mirror) changed(ds ...Digest) {
	if m.changes != nil {
		m.changes.note(ds...)
	}
}
