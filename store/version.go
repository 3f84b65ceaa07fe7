package store

import "sync"

// Version returns a number that changes whenever what List returns may
// have changed: an artifact indexed or removed on a mirror, or a mirror
// turning healthy or unhealthy. Callers cache what they derive from List
// (such as an encoded listing) and derive it again when Version moves.
// Read Version before List: a change that lands between the two then moves
// Version again, so the cache is refreshed on the next call.
func (s *Store) Version() uint64 { return s.changes.version() }

// ChangedSince returns the digests whose entry in List may differ from
// what it was at version v, and the version they bring it to. ok is false
// when that is not known (v is too old for the log, or a mirror's health
// or whole index changed since): derive everything again from List. A
// caller holding List's result as of v brings it up to date by asking
// Stat of each digest (in any order, after this call).
func (s *Store) ChangedSince(v uint64) (ds []Digest, now uint64, ok bool) {
	return s.changes.since(v)
}

// maxChangeLog bounds the log of changed digests; a reader further behind
// than this derives its listing afresh.
const maxChangeLog = 16384

// changeLog counts changes to the mirrors' indexes and health (Version)
// and remembers which digests the recent ones touched (ChangedSince).
type changeLog struct {
	mu  sync.Mutex
	ver uint64
	// wide is the version of the last change not tied to digests (a
	// mirror's health, an index read at open).
	wide uint64
	// log holds one entry per changed digest, in version order; from is
	// the oldest version it fully covers.
	log  []changeEntry
	from uint64
}

type changeEntry struct {
	ver uint64
	d   Digest
}

func (c *changeLog) version() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ver
}

// note records one change touching ds; none means every digest.
func (c *changeLog) note(ds ...Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ver++
	if len(ds) == 0 {
		c.wide = c.ver
		c.log, c.from = c.log[:0], c.ver
		return
	}
	if len(c.log)+len(ds) > maxChangeLog {
		// Keep the newer half; readers older than that start afresh.
		keep := c.log[len(c.log)/2:]
		c.from = keep[0].ver // its own entries may be cut
		c.log = append(c.log[:0], keep...)
		if len(c.log)+len(ds) > maxChangeLog {
			c.log, c.from = c.log[:0], c.ver
			return
		}
	}
	for _, d := range ds {
		c.log = append(c.log, changeEntry{c.ver, d})
	}
}

func (c *changeLog) since(v uint64) ([]Digest, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v > c.ver || v < c.wide || v < c.from {
		return nil, c.ver, false
	}
	var ds []Digest
	for i := len(c.log) - 1; i >= 0 && c.log[i].ver > v; i-- {
		ds = append(ds, c.log[i].d)
	}
	return ds, c.ver, true
}
