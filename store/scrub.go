package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"depot/store/trigger"

	"golang.org/x/time/rate"
)

// ScrubStatus is the progress of the scrub in flight (or the last one) and
// the totals since start-up, as shown in /status.
type ScrubStatus struct {
	Running  bool      `json:"running"`
	Verify   bool      `json:"verify"` // false: a refill pass that only copies what is missing
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// This pass.
	Artifacts int    `json:"artifacts"` // artifacts to look at
	Checked   int    `json:"checked"`   // artifacts looked at so far
	Bytes     int64  `json:"bytes"`     // bytes re-hashed or copied
	Corrupt   int    `json:"corrupt"`   // copies that did not hash to their name (removed)
	Missing   int    `json:"missing"`   // copies absent from a healthy mirror
	Repaired  int    `json:"repaired"`  // copies written from a mirror whose copy verified
	Failed    int    `json:"failed"`    // repairs that failed, or artifacts with no good copy left
	LastError string `json:"last_error,omitempty"`
	// Since start-up.
	Passes        int `json:"passes"`
	TotalCorrupt  int `json:"total_corrupt"`
	TotalRepaired int `json:"total_repaired"`
	TotalFailed   int `json:"total_failed"`
}

// scrubber holds the scrub state; mu guards st.
type scrubber struct {
	rate  int64 // bytes per second, 0 = unbounded
	kick  trigger.Trigger
	runMu sync.Mutex // held for a whole pass: one pass at a time
	mu    sync.Mutex
	st    ScrubStatus

	// verify is set by a verify request and taken by the pass the kick
	// starts: a refill request queued with it folds into the verify pass.
	verify atomic.Bool
}

// ScrubStatus returns a copy of the scrub state.
func (s *Store) ScrubStatus() ScrubStatus {
	s.scrub.mu.Lock()
	defer s.scrub.mu.Unlock()
	return s.scrub.st
}

// StartScrub asks the background scrubber for a pass: verify re-hashes
// every copy, otherwise only missing copies are filled. It never blocks; a
// request while a pass is queued is folded into it (a verify request wins).
func (s *Store) StartScrub(verify bool) {
	if verify {
		s.scrub.verify.Store(true)
	}
	s.scrub.kick.Fire()
}

func (s *Store) scrubLoop(ctx context.Context, every time.Duration) {
	defer s.wg.Done()
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		verify := true
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-s.scrub.kick.C():
			verify = s.scrub.verify.Swap(false)
		}
		if _, err := s.Scrub(ctx, verify); err != nil && ctx.Err() == nil {
			s.log.Error("scrub failed", "err", err)
		}
	}
}

// Scrub runs one pass now and returns its findings. With verify, every copy
// on every healthy mirror is re-hashed at the store's scrub rate; a copy
// that does not hash to its name is removed and its verified time recorded
// otherwise. Then every healthy mirror that lacks an artifact another mirror
// holds is filled from a copy that verifies on the way. Passes do not
// overlap: a second caller waits for the first. Safe to run at any time.
func (s *Store) Scrub(ctx context.Context, verify bool) (ScrubStatus, error) {
	s.scrub.runMu.Lock()
	defer s.scrub.runMu.Unlock()

	digests := s.allDigests()
	s.scrub.mu.Lock()
	st := &s.scrub.st
	st.Running, st.Verify, st.Started, st.Finished = true, verify, time.Now(), time.Time{}
	st.Artifacts, st.Checked, st.Bytes = len(digests), 0, 0
	st.Corrupt, st.Missing, st.Repaired, st.Failed, st.LastError = 0, 0, 0, 0, ""
	s.scrub.mu.Unlock()

	lim := newLimiter(s.scrub.rate)
	var err error
	for _, d := range digests {
		if err = ctx.Err(); err != nil {
			break
		}
		s.scrubOne(ctx, d, verify, lim)
		s.scrub.mu.Lock()
		st.Checked++
		s.scrub.mu.Unlock()
	}

	s.scrub.mu.Lock()
	defer s.scrub.mu.Unlock()
	st.Running, st.Finished = false, time.Now()
	st.Passes++
	st.TotalCorrupt += st.Corrupt
	st.TotalRepaired += st.Repaired
	st.TotalFailed += st.Failed
	if err != nil {
		st.LastError = err.Error()
	}
	s.log.Info("scrub pass done", "verify", verify, "artifacts", st.Artifacts, "checked", st.Checked,
		"corrupt", st.Corrupt, "missing", st.Missing, "repaired", st.Repaired, "failed", st.Failed,
		"duration", st.Finished.Sub(st.Started).Round(time.Millisecond))
	return *st, err
}

func (s *Store) note(f func(st *ScrubStatus)) {
	s.scrub.mu.Lock()
	f(&s.scrub.st)
	s.scrub.mu.Unlock()
}

// allDigests is every digest any healthy mirror holds, sorted.
func (s *Store) allDigests() []Digest {
	seen := make(map[Digest]bool)
	for _, m := range s.mirrors {
		m.mu.RLock()
		if m.healthy {
			for d := range m.index {
				seen[d] = true
			}
		}
		m.mu.RUnlock()
	}
	out := make([]Digest, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out
}

func (s *Store) scrubOne(ctx context.Context, d Digest, verify bool, lim *rate.Limiter) {
	var good, lacking []*mirror
	var size int64
	for _, m := range s.mirrors {
		if !m.isHealthy() {
			continue
		}
		r, ok := m.lookup(d)
		if !ok {
			lacking = append(lacking, m)
			continue
		}
		size = r.Size
		if !verify {
			good = append(good, m)
			continue
		}
		got, n, err := hashFile(ctx, m.fs, m.artifactPath(d), lim)
		s.note(func(st *ScrubStatus) { st.Bytes += n })
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && got == d:
			// A file that hashes to its name wins over an index entry
			// whose size disagrees: the entry is corrected.
			r.Size, r.Verified = n, time.Now()
			size = n
			if !s.recordVerified(m, d, r) {
				continue // deleted while it was hashed
			}
			good = append(good, m)
		case err != nil && (!errors.Is(err, fs.ErrNotExist) || m.vanished()):
			// The disk failed to read, not the bytes: the mirror is suspect.
			m.fail("scrub read", err)
		default:
			s.log.Error("corrupt artifact copy removed", "mirror", m.root, "digest", d, "err", err)
			s.note(func(st *ScrubStatus) { st.Corrupt++ })
			s.dropCopy(m, d)
			lacking = append(lacking, m)
		}
	}
	if len(lacking) == 0 {
		return
	}
	s.note(func(st *ScrubStatus) { st.Missing += len(lacking) })
	for len(good) > 0 {
		src := good[0]
		good = good[1:]
		n, err := s.repair(ctx, d, size, src, lacking, lim)
		s.note(func(st *ScrubStatus) { st.Bytes += n })
		if err == nil {
			s.note(func(st *ScrubStatus) { st.Repaired += len(lacking) })
			s.log.Info("artifact copy repaired", "digest", d, "from", src.root, "mirrors", len(lacking))
			return
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrHashMismatch) || errors.Is(err, ErrSizeMismatch) {
			// The source went bad since it was looked at (or was not
			// verified this pass): drop it and try the next one.
			s.note(func(st *ScrubStatus) { st.Corrupt++ })
			s.dropCopy(src, d)
			lacking = append(lacking, src)
			continue
		}
		s.log.Error("artifact repair failed", "digest", d, "from", src.root, "err", err)
		s.note(func(st *ScrubStatus) { st.Failed++; st.LastError = err.Error() })
		return
	}
	if verify || len(lacking) == len(s.mirrors) {
		s.log.Error("no good copy of artifact left on this sled", "digest", d)
		s.note(func(st *ScrubStatus) { st.Failed++ })
	}
}

// recordVerified writes d's verified record under d's lock, only if the
// mirror still holds d: a delete that ran while the copy was hashed wins.
// It reports whether the record was kept.
func (s *Store) recordVerified(m *mirror, d Digest, r record) bool {
	s.locks[d[0]].Lock()
	defer s.locks[d[0]].Unlock()
	if _, ok := m.lookup(d); !ok {
		return false
	}
	if err := m.putRecord(d, r); err != nil {
		m.fail("record verification", err)
		return false
	}
	return true
}

func (s *Store) dropCopy(m *mirror, d Digest) {
	s.locks[d[0]].Lock()
	defer s.locks[d[0]].Unlock()
	if err := m.remove(d); err != nil {
		m.fail("remove corrupt copy", err)
	}
}

// repair copies d from src to every mirror in dst through the store's one
// write path (writeCopies: temp, hash, fsync, rename, index). The copy is
// written without the digest's lock and published under it, after checking
// that d was not deleted meanwhile: scrub never brings back what a delete
// removed in this process.
func (s *Store) repair(ctx context.Context, d Digest, size int64, src *mirror, dst []*mirror, lim *rate.Limiter) (int64, error) {
	in, err := src.fs.OpenFile(src.artifactPath(d), os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("repair %s from %s: %w", d, src.root, ErrSizeMismatch)
		}
		return 0, fmt.Errorf("repair %s from %s: %w", d, src.root, err)
	}
	defer in.Close()
	stillThere := func() bool { _, ok := src.lookup(d); return ok }
	w, err := s.writeCopies(ctx, d, paced(ctx, in, lim), size, dst, false, stillThere)
	if err != nil {
		return w.n, fmt.Errorf("repair %s from %s: %w", d, src.root, err)
	}
	// A target whose temp file could not be created is already marked
	// unhealthy; only write and publish failures fail the repair.
	return w.n, errors.Join(w.errs...)
}

// newLimiter bounds scrub reads to bytesPerSec; nil (no bound) for 0. The
// burst is one read, at most a write chunk.
func newLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSec), int(min(bytesPerSec, chunkSize)))
}

// paced returns r read at lim's rate, so a scrub does not starve the sled's
// real work; r itself when lim is nil.
func paced(ctx context.Context, r io.Reader, lim *rate.Limiter) io.Reader {
	if lim == nil {
		return r
	}
	return &pacedReader{ctx: ctx, r: r, lim: lim}
}

type pacedReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (r *pacedReader) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if len(b) > r.lim.Burst() {
		b = b[:r.lim.Burst()] // WaitN refuses more than the burst
	}
	n, err := r.r.Read(b)
	if werr := r.lim.WaitN(r.ctx, n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}
