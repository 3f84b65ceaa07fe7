package store

import (
	"context"
	"fmt"
	"io"
	"slices"
)

// Put stores body under d in every healthy mirror. size is the declared
// length, or -1 when unknown. The body is read once and hashed once while
// every mirror that lacks d writes it in parallel into a temp file; after
// the digest and length check out, each mirror fsyncs, renames, fsyncs the
// folder and indexes (writeCopies). Put succeeds when at least one mirror
// holds a verified copy. A mirror that fails is marked unhealthy and the
// others carry on.
//
// When every healthy mirror already holds d, Put reads and hashes the body
// without writing it (so a wrong body is still ErrHashMismatch). On any
// error nothing of this call is left on any mirror. Put does not close body.
func (s *Store) Put(ctx context.Context, d Digest, body io.Reader, size int64) (PutResult, error) {
	if s.closed.Load() {
		return PutResult{}, ErrClosed
	}
	res := PutResult{Datasets: len(s.mirrors)}
	var targets, have []*mirror
	for _, m := range s.mirrors {
		if _, ok := m.lookup(d); ok {
			have = append(have, m)
		} else if m.isHealthy() {
			targets = append(targets, m)
		}
	}
	if len(targets) == 0 && len(have) == 0 {
		return res, fmt.Errorf("put %s: %w", d, ErrNoMirrors)
	}
	// With copies already in place the body is still read to the end and
	// hashed, even if every new copy fails.
	w, err := s.writeCopies(ctx, d, body, size, targets, len(have) > 0, nil)
	if err != nil {
		return res, fmt.Errorf("put %s: %w", d, err)
	}
	res.Written = w.written
	res.SuccessfulWrites = len(have) + w.written
	s.refillIfReturned(targets, have)
	if res.SuccessfulWrites == 0 {
		return res, fmt.Errorf("put %s: %w", d, noMirrorErr(append(w.openErrs, w.errs...)))
	}
	return res, nil
}

// refillIfReturned queues a refill pass when a mirror came back while a
// write ran: it was not a target, and the refill pass it triggered may
// have listed the artifacts before this one was indexed.
func (s *Store) refillIfReturned(targets, have []*mirror) {
	for _, m := range s.mirrors {
		if m.isHealthy() && !slices.Contains(targets, m) && !slices.Contains(have, m) {
			s.StartScrub(false)
			return
		}
	}
}
