package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"depot/store/trigger"
)

// Store is one sled's blob store over N mirror directories. Safe for
// concurrent use.
type Store struct {
	mirrors []*mirror
	log     *slog.Logger

	// locks serialise publish and delete of the same digest, so a delete
	// cannot slip between a rename and its index entry. Striped by the
	// digest's first byte: cheap, and contention across digests is rare.
	locks [256]sync.Mutex

	scrub scrubber

	// changes counts changes to any mirror's index or health (Version,
	// ChangedSince).
	changes changeLog

	// tombMu orders the writing of tombstones (Delete) against their
	// clearing (clearDoneTombstones).
	tombMu sync.Mutex

	closed atomic.Bool
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// Open opens (creating if needed) every mirror in parallel, locks its
// index, clears temp files and reconciles index and files. A mirror held by
// another process fails Open with ErrLocked. Any other mirror that cannot
// be opened is left out, unhealthy, with the reason in Mirrors(), and the
// background check retries it; a mirror whose index is unreadable has it
// moved aside and rebuilt from its files in the background, serving once
// that is done. Open fails only when no mirror opened and none is being
// rebuilt. Deletes that a mirror missed (tombstones on the others) are
// done before it serves. A new store creates its folders and marks them
// as mirrors; after that, a folder without the marker is left out (see
// marker.go).
func Open(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Mirrors) == 0 {
		return nil, errors.New("open store: no mirror directories given")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	probeEvery := opts.ProbeInterval
	if probeEvery == 0 {
		probeEvery = 10 * time.Second
	}
	s := &Store{log: log}
	s.scrub.rate = opts.ScrubRate
	s.scrub.kick = trigger.New()
	seen := make(map[string]bool)
	for _, root := range opts.Mirrors {
		if seen[root] {
			return nil, fmt.Errorf("open store: mirror %s given twice", root)
		}
		seen[root] = true
		var fsys FS = OSFS{}
		if opts.FS != nil {
			fsys = opts.FS(root)
		}
		s.mirrors = append(s.mirrors, &mirror{root: root, fs: fsys, log: log, lockTimeout: timeout, changes: &s.changes})
	}

	// A new store writes every mirror's marker; once any mirror has one, a
	// folder without it is not taken for a mirror (an unmounted disk).
	// Mirrors made before markers existed get theirs now.
	initialised := false
	for _, m := range s.mirrors {
		if m.hasMarker() {
			initialised = true
		}
	}
	errs := make([]error, len(s.mirrors))
	var wg sync.WaitGroup
	for i, m := range s.mirrors {
		create := !initialised || m.isLegacy()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.open(ctx, create)
		}()
	}
	wg.Wait()
	var failed []error
	var rebuild []*mirror
	opened := 0
	for i, m := range s.mirrors {
		switch err := errs[i]; {
		case err == nil:
			opened++
		case errors.Is(err, ErrLocked):
			s.closeMirrors()
			return nil, err
		case errors.Is(err, errIndexCorrupt):
			m.fail("open index", fmt.Errorf("%w; rebuilding it from the mirror's files", err))
			m.rebuilding = true
			rebuild = append(rebuild, m)
		default:
			m.fail("open", err)
			failed = append(failed, err)
		}
	}
	if opened == 0 && len(rebuild) == 0 {
		s.closeMirrors()
		return nil, fmt.Errorf("open store: no mirror could be opened: %w", errors.Join(failed...))
	}
	if err := s.applyTombstones(); err != nil {
		s.closeMirrors()
		return nil, err
	}
	for i, m := range s.mirrors {
		if errs[i] == nil {
			if err := m.applyPending(&s.locks); err != nil {
				m.fail("apply missed deletes", err)
				continue
			}
			m.setHealthy()
		}
	}
	s.clearDoneTombstones()

	pctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(2 + len(rebuild))
	for _, m := range rebuild {
		go s.rebuild(pctx, m)
	}
	go s.watch(pctx, probeEvery)
	go s.scrubLoop(pctx, opts.ScrubInterval)
	return s, nil
}

// rebuild rebuilds m's unreadable index from its files in the background;
// the mirror serves (and is refilled) once that is done.
func (s *Store) rebuild(ctx context.Context, m *mirror) {
	defer s.wg.Done()
	defer func() {
		m.mu.Lock()
		m.rebuilding = false
		m.mu.Unlock()
	}()
	if err := m.rebuild(ctx); err != nil {
		m.fail("rebuild index", err)
		return
	}
	if err := s.applyTombstones(); err != nil {
		m.fail("apply missed deletes", err)
		return
	}
	if err := m.applyPending(&s.locks); err != nil {
		m.fail("apply missed deletes", err)
		return
	}
	m.setHealthy()
	s.log.Info("mirror index rebuilt; mirror healthy", "mirror", m.root)
	s.clearDoneTombstones()
	s.StartScrub(false)
}

// Close stops background work and releases every mirror. Writes still in
// flight fail; call it after the server has drained.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stop()
	s.wg.Wait()
	return s.closeMirrors()
}

func (s *Store) closeMirrors() error {
	var errs []error
	for _, m := range s.mirrors {
		if err := m.close(); err != nil {
			errs = append(errs, fmt.Errorf("close mirror %s: %w", m.root, err))
		}
	}
	return errors.Join(errs...)
}

// watch notices mirrors that vanish while idle and brings back the ones
// that recover: an unhealthy mirror that passes a probe is healthy again;
// one whose folder was removed and made again is re-opened (locked,
// reconciled) first.
func (s *Store) watch(ctx context.Context, every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if back := s.CheckMirrors(ctx); len(back) > 0 {
			s.StartScrub(false) // refill what the returning mirrors lack
		}
	}
}

// CheckMirrors probes every mirror once: a healthy mirror whose index file
// is gone is marked unhealthy; an unhealthy one that can take a write again
// is re-opened and marked healthy, after the deletes it missed. It
// returns the mirrors that came back (the background check then queues a
// refill pass). Safe to call at any time; the store calls it every ProbeInterval.
func (s *Store) CheckMirrors(ctx context.Context) []string {
	if s.closed.Load() {
		return nil
	}
	var back []string
	for _, m := range s.mirrors {
		if m.isHealthy() {
			if m.vanished() {
				m.fail("check", errors.New("mirror folder or its index vanished"))
			} else if err := m.applyPending(&s.locks); err != nil {
				// Deletes it missed for lack of a process resource.
				m.fail("apply missed deletes", err)
			}
			continue
		}
		m.mu.RLock()
		rebuilding, opened := m.rebuilding, m.db != nil
		m.mu.RUnlock()
		if rebuilding {
			continue
		}
		// A mirror whose folder is gone stays unhealthy: the folder itself
		// is not made again here. A folder without the mirror marker (an
		// unmounted disk's mount point) is not re-opened either (open).
		if _, err := m.fs.Stat(m.root); err != nil {
			continue
		}
		if !opened || m.vanished() {
			if err := m.open(ctx, false); err != nil {
				if errors.Is(err, errIndexCorrupt) {
					m.fail("open index", fmt.Errorf("%w; rebuilding it from the mirror's files", err))
					m.mu.Lock()
					m.rebuilding = true
					m.mu.Unlock()
					s.wg.Add(1)
					go s.rebuild(ctx, m)
					continue
				}
				m.fail("reopen", err)
				continue
			}
		} else if err := m.probe(); err != nil {
			m.fail("probe", err)
			continue
		}
		if err := s.applyTombstones(); err != nil {
			m.fail("apply missed deletes", err)
			continue
		}
		if err := m.applyPending(&s.locks); err != nil {
			m.fail("apply missed deletes", err)
			continue
		}
		m.setHealthy()
		s.log.Info("mirror healthy again", "mirror", m.root)
		back = append(back, m.root)
	}
	if len(back) > 0 {
		s.clearDoneTombstones()
	}
	return back
}
