package depot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"depot/depot/stall"
	"depot/store"
)

// Copy job states.
const (
	CopyQueued    = "queued" // accepted, waiting for a free slot
	CopyRunning   = "running"
	CopySucceeded = "succeeded"
	CopyFailed    = "failed"
)

// CopyJob is one copy-from-depot job as reported by GET /copies.
type CopyJob struct {
	Hash       store.Digest `json:"hash"`
	Source     string       `json:"source"`
	Generation *uint64      `json:"generation"`
	State      string       `json:"state"`
	Bytes      int64        `json:"bytes"`
	Error      string       `json:"error,omitempty"`
	Started    time.Time    `json:"started"` // when the job was accepted
	Finished   time.Time    `json:"finished,omitzero"`
}

// CopyCounts sums up copy jobs for /status.
type CopyCounts struct {
	Running    int   `json:"running"`
	Limit      int   `json:"limit"`
	Queued     int   `json:"queued"`      // accepted, waiting for a slot
	QueueLimit int   `json:"queue_limit"` // most jobs waiting; one more is refused
	Succeeded  int64 `json:"succeeded"`   // since start-up
	Failed     int64 `json:"failed"`      // since start-up
	Rejected   int64 `json:"rejected"`    // refused with TOO_MANY_COPIES since start-up
}

// copyJob is a queued, running or finished job; mu guards job, bytes is
// live.
type copyJob struct {
	mu    sync.Mutex
	job   CopyJob
	bytes atomic.Int64
	done  chan struct{} // closed when the job ends
}

func (j *copyJob) snapshot() CopyJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := j.job
	c.Bytes = j.bytes.Load()
	return c
}

// copyTracker tracks copy jobs; mu guards everything below it. A job
// holds a slot of slots while it runs; at most max run and maxQueued wait.
type copyTracker struct {
	max       int
	maxQueued int
	stall     time.Duration
	history   int
	slots     chan struct{} // capacity max
	writes    *WriteSlots   // shared with PUTs and uploads; nil: no bound

	mu       sync.Mutex
	active   map[store.Digest]*copyJob // queued or running
	running  int                       // jobs of active holding a slot
	finished []*copyJob                // oldest first, at most history
	totals   CopyCounts
}

func (t *copyTracker) counts() CopyCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.totals
	c.Running, c.Limit = t.running, t.max
	c.Queued, c.QueueLimit = len(t.active)-t.running, t.maxQueued
	return c
}

// full reports whether no job can be accepted; the caller holds mu.
func (t *copyTracker) full() bool { return len(t.active) >= t.max+t.maxQueued }

// reject counts a refusal and returns its error; the caller holds mu.
func (t *copyTracker) reject() error {
	t.totals.Rejected++
	return fmt.Errorf("%w: %d copies are running and %d waiting, the limits are %d and %d",
		ErrTooManyCopies, t.running, len(t.active)-t.running, t.max, t.maxQueued)
}

// RetryAfter is how long a caller refused with ErrTooManyCopies should wait.
const RetryAfter = 5 * time.Second

// CopyFromDepot accepts a background job that fetches d from the depot at
// baseURL and writes it through the store's normal path (hash verified; a
// peer that sends wrong or short bytes fails the job and stores nothing).
// Checks are made before the job is accepted, in order: the URL
// (ErrInvalidSource), the generation and config (as Put), room in the
// queue (ErrTooManyCopies), and the source itself, asked with a HEAD
// bounded by the copy's stall timeout (ErrSourceUnavailable when it
// cannot be asked, ErrSourceNotFound when it does not hold d). A job
// already queued or running for d absorbs the request. Accepted jobs wait
// in a bounded queue for one of the running slots. The job outlives the
// request; Close cancels it.
func (s *Sled) CopyFromDepot(ctx context.Context, d store.Digest, gen *uint64, baseURL string) error {
	if err := validateSource(baseURL); err != nil {
		return err
	}
	if s.peer == nil {
		return fmt.Errorf("%w: this sled cannot copy (no peer client)", ErrInvalidSource)
	}
	if p, ok := s.peer.(SourceChecker); ok {
		if err := p.CheckSource(baseURL); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSource, err)
		}
	}
	if err := s.admit(d, gen); err != nil {
		return err
	}
	// The job's place in s.wg is taken under s.mu, so it is ordered
	// against Close: a copy either starts before Close waits or not at all.
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.mu.RUnlock()
	started := false
	defer func() {
		if !started {
			s.wg.Done()
		}
	}()
	t := &s.copies
	t.mu.Lock()
	if _, ok := t.active[d]; ok {
		t.mu.Unlock()
		return nil
	}
	if t.full() {
		err := t.reject()
		t.mu.Unlock()
		return err
	}
	t.mu.Unlock()

	if err := s.checkSource(ctx, baseURL, d); err != nil {
		return err
	}

	t.mu.Lock()
	if _, ok := t.active[d]; ok {
		t.mu.Unlock()
		return nil
	}
	if t.full() { // others were accepted while the source was asked
		err := t.reject()
		t.mu.Unlock()
		return err
	}
	j := &copyJob{done: make(chan struct{}), job: CopyJob{
		Hash: d, Source: baseURL, Generation: gen, State: CopyQueued, Started: time.Now(),
	}}
	t.active[d] = j
	started = true
	t.mu.Unlock()

	go s.runCopy(j, d, baseURL)
	return nil
}

// checkSource asks the source whether it holds d, under the copy's limits
// (the peer's connect timeout, and the stall timeout for the whole HEAD).
// The cause goes to the log only: a source's answer is never repeated to
// the caller.
func (s *Sled) checkSource(ctx context.Context, baseURL string, d store.Digest) error {
	ctx, cancel := context.WithTimeout(ctx, s.copies.stall)
	defer cancel()
	_, err := s.peer.Stat(ctx, baseURL, d)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		s.log.Warn("copy refused: the source does not hold the artifact", "digest", d, "source", baseURL)
		return fmt.Errorf("%w: %s does not hold %s", ErrSourceNotFound, baseURL, d)
	default:
		s.log.Warn("copy refused: the source cannot be reached", "digest", d, "source", baseURL, "err", err)
		return fmt.Errorf("%w: %s", ErrSourceUnavailable, baseURL)
	}
}

// SourceChecker is implemented by a Peer that applies a source policy
// (an allowlist): CheckSource refuses, before any job starts, a base URL
// that the peer would refuse to fetch from. The peer enforces the same
// policy again when it connects.
type SourceChecker interface {
	CheckSource(baseURL string) error
}

// validateSource accepts scheme://host:port and nothing else: http or
// https, an explicit port, no userinfo, path, query or fragment. The
// artifact path is appended by the peer, so anything after the authority
// would change what is fetched.
func validateSource(raw string) error { return validateBaseURL(raw, true) }

// validateBaseURL is validateSource with the port optional (a sled's
// control URL may use the scheme's default port).
func validateBaseURL(raw string, needPort bool) error {
	// The URL itself is the caller's input, echoed back to the caller only.
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %q does not parse", ErrInvalidSource, raw)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: %q must be http://host:port or https://host:port", ErrInvalidSource, raw)
	case u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%w: %q must be scheme://host:port only (no userinfo, query or fragment)", ErrInvalidSource, raw)
	case u.Path != "" || u.RawPath != "":
		return fmt.Errorf("%w: %q must be scheme://host:port only (no path; the artifact path is added by the sled)", ErrInvalidSource, raw)
	case u.Hostname() == "":
		return fmt.Errorf("%w: %q has no host", ErrInvalidSource, raw)
	case u.Port() == "" && needPort:
		return fmt.Errorf("%w: %q needs an explicit port", ErrInvalidSource, raw)
	case u.Port() == "":
		return nil
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: %q has no valid port", ErrInvalidSource, raw)
	}
	return nil
}

var errStalled = errors.New("copy stalled")

func (s *Sled) runCopy(j *copyJob, d store.Digest, baseURL string) {
	defer s.wg.Done()
	t := &s.copies
	var err error
	ran := false
	select {
	case t.slots <- struct{}{}:
		ran = true
		t.mu.Lock()
		t.running++
		t.mu.Unlock()
		j.mu.Lock()
		j.job.State = CopyRunning
		j.mu.Unlock()
		err = s.runSlot(j, d, baseURL)
	case <-s.ctx.Done():
		err = fmt.Errorf("%w: the copy was queued when the sled closed", ErrClosed)
	}

	t.mu.Lock()
	if ran {
		t.running--
	}
	j.mu.Lock()
	j.job.Finished = time.Now()
	if err != nil {
		j.job.State, j.job.Error = CopyFailed, err.Error()
		t.totals.Failed++
	} else {
		j.job.State = CopySucceeded
		t.totals.Succeeded++
	}
	j.mu.Unlock()
	delete(t.active, d)
	t.finished = append(t.finished, j)
	if len(t.finished) > t.history {
		t.finished = t.finished[len(t.finished)-t.history:]
	}
	t.mu.Unlock()
	if ran {
		<-t.slots // after running--, so counts never show more than max
	}
	close(j.done)

	if err != nil {
		s.log.Error("copy failed", "digest", d, "source", baseURL, "bytes", j.bytes.Load(), "err", err)
	} else {
		s.log.Info("copy done", "digest", d, "source", baseURL, "bytes", j.bytes.Load())
	}
}

// runSlot runs the copy while j holds a slot.
func (s *Sled) runSlot(j *copyJob, d store.Digest, baseURL string) error {
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	// A running copy writes into the store, so it takes one of the write
	// slots PUTs and uploads share; it waits for one, as it waited for its
	// copy slot, rather than failing a job already accepted.
	if err := s.copies.writes.Acquire(ctx); err != nil {
		return fmt.Errorf("%w: the copy was waiting for a write slot when the sled closed", ErrClosed)
	}
	defer s.copies.writes.Release()
	err := s.copy(ctx, cancel, j, d, baseURL)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, errStalled) {
		err = cause
	}
	s.afterWrite(d)
	return err
}

func (s *Sled) copy(ctx context.Context, cancel context.CancelCauseFunc, j *copyJob, d store.Digest, baseURL string) error {
	var st copyStore = s.st
	if info, err := st.Stat(ctx, d); err == nil && info.Copies >= healthyMirrors(st) {
		return nil // already on every healthy mirror: nothing to fetch
	}
	// The watchdog covers the whole fetch, from connecting to the last byte.
	w := stall.New(s.copies.stall, func() {
		cancel(fmt.Errorf("%w: no bytes from %s for %s", errStalled, baseURL, s.copies.stall))
	})
	defer w.Stop()
	body, size, err := s.peer.Fetch(ctx, baseURL, d)
	if err != nil {
		return fmt.Errorf("fetch from %s: %w", baseURL, err)
	}
	defer body.Close()
	r := &stall.Reader{R: body, Progress: func(n int) {
		j.bytes.Add(int64(n))
		w.Progress()
	}}
	if _, err := st.Put(ctx, d, r, size); err != nil {
		return fmt.Errorf("copy from %s: %w", baseURL, err)
	}
	return nil
}

// Copies returns every queued and running job and the most recent
// finished ones, newest first.
func (s *Sled) Copies() []CopyJob {
	t := &s.copies
	t.mu.Lock()
	jobs := make([]*copyJob, 0, len(t.active)+len(t.finished))
	for _, j := range t.active {
		jobs = append(jobs, j)
	}
	jobs = append(jobs, t.finished...)
	t.mu.Unlock()
	out := make([]CopyJob, len(jobs))
	for i, j := range jobs {
		out[i] = j.snapshot()
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Started.After(out[b].Started) })
	return out
}

// WaitCopy returns the job for d: the queued or running one, else the most
// recent finished one. With wait > 0 it long-polls: it returns as soon as
// an active job finishes, or when wait or ctx ends. ErrCopyNotFound when d
// has no job.
func (s *Sled) WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (CopyJob, error) {
	t := &s.copies
	t.mu.Lock()
	j, ok := t.active[d]
	if !ok {
		for i := len(t.finished) - 1; i >= 0; i-- {
			if t.finished[i].job.Hash == d {
				j, ok = t.finished[i], true
				break
			}
		}
	}
	t.mu.Unlock()
	if !ok {
		return CopyJob{}, fmt.Errorf("%w: %s", ErrCopyNotFound, d)
	}
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-j.done:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	return j.snapshot(), nil
}
