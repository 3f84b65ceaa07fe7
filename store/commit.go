package store

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit. A published copy needs three things durable before its
// write is acknowledged: the file's data (publish fsyncs it), its directory
// entry (an fsync of the fan-out folder) and its index record (a bbolt
// commit, itself two fdatasyncs). The last two are shared: writes that reach
// a mirror's committer while it is busy wait for the next batch, which
// fsyncs each touched folder once (all folders in parallel, so the file
// system can fold them into one journal commit) and then indexes every
// record of the batch in one bbolt transaction. Nothing waits for a timer:
// a lone write is committed at once, and under load a batch is whatever
// arrived during the previous one.

// maxBatch bounds one batch, so one bbolt transaction stays small.
const maxBatch = 512

// commitReq is one renamed copy waiting for its folder fsync and index entry.
type commitReq struct {
	d    Digest
	dir  string
	rec  record
	done chan error
}

// committer batches a mirror's commits. Whoever finds it idle becomes the
// leader: it commits the batch that includes its own request, then, if more
// arrived meanwhile, hands the rest to a new goroutine and returns.
type committer struct {
	mu      sync.Mutex
	pending []*commitReq
	running bool
}

// commitCopy makes d's renamed file in dir durable and indexes it with rec;
// it returns once both are on disk (or failed), as part of a batch.
func (m *mirror) commitCopy(d Digest, dir string, rec record) error {
	req := &commitReq{d: d, dir: dir, rec: rec, done: make(chan error, 1)}
	c := &m.commit
	c.mu.Lock()
	c.pending = append(c.pending, req)
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead {
		m.commitLoop(true)
	}
	return <-req.done
}

// commitLoop commits batches until none is pending. once: commit one batch
// and hand whatever is left to a new goroutine (the caller is a writer
// waiting for its answer).
func (m *mirror) commitLoop(once bool) {
	c := &m.commit
	for {
		c.mu.Lock()
		batch := c.pending
		if len(batch) > maxBatch {
			batch = batch[:maxBatch:maxBatch]
		}
		c.pending = c.pending[len(batch):]
		if len(batch) == 0 {
			c.running = false
			c.pending = nil
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		err := m.commitBatch(batch)
		for _, r := range batch {
			r.done <- err
		}
		if once {
			go m.commitLoop(false)
			return
		}
	}
}

// commitBatch fsyncs every folder the batch touched, once each and in
// parallel, then indexes every record in one transaction. Either step
// failing fails the whole batch: none of its writes is acknowledged on this
// mirror.
func (m *mirror) commitBatch(batch []*commitReq) error {
	dirs := make(map[string]bool, len(batch))
	for _, r := range batch {
		dirs[r.dir] = true
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for dir := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := syncDir(m.fs, dir); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("fsync %s: %w", dir, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	m.mu.RLock()
	db := m.db
	m.mu.RUnlock()
	if db == nil {
		return ErrClosed
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketArtifacts)
		for _, r := range batch {
			if err := b.Put(r.d[:], r.rec.encode()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index %d artifacts in mirror %s: %w", len(batch), m.root, err)
	}
	m.mu.Lock()
	for _, r := range batch {
		if old, ok := m.index[r.d]; ok {
			m.bytes -= old.Size
		}
		m.index[r.d] = r.rec
		m.bytes += r.rec.Size
	}
	m.mu.Unlock()
	m.changed()
	return nil
}

// changed notes that the mirror's index or health changed (see
// Store.Version).
func (m *mirror) changed() {
	if m.changes != nil {
		m.changes.Add(1)
	}
}
