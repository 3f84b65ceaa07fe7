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

	closed atomic.Bool
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// Open opens (creating if needed) every mirror, locks its index, clears temp
// files and reconciles index and files. Every mirror must open: one held
// by another process fails Open with ErrLocked, and one that cannot be
// created or whose index cannot be opened (corrupt) fails it too; none is
// left out. A folder that does not exist yet is created, so a mistyped path
// becomes a new, empty mirror.
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
		m := &mirror{root: root, fs: fsys, log: log, lockTimeout: timeout}
		if err := m.open(ctx); err != nil {
			s.closeMirrors()
			return nil, err
		}
		m.setHealthy()
		s.mirrors = append(s.mirrors, m)
	}
	pctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(2)
	go s.watch(pctx, probeEvery)
	go s.scrubLoop(pctx, opts.ScrubInterval)
	return s, nil
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
// is re-opened and marked healthy. It returns the mirrors that came back.
// Safe to call at any time; the store calls it every ProbeInterval.
func (s *Store) CheckMirrors(ctx context.Context) []string {
	var back []string
	for _, m := range s.mirrors {
		if m.isHealthy() {
			if m.vanished() {
				m.fail("check", errors.New("mirror folder or its index vanished"))
			}
			continue
		}
		// A mirror whose folder is gone stays unhealthy: the folder itself
		// is not made again here. This does not catch an unmounted disk:
		// its mount point is an existing (empty) folder, passes this check
		// and is re-opened below as an empty mirror on the disk beneath,
		// which the next refill pass then fills.
		if _, err := m.fs.Stat(m.root); err != nil {
			continue
		}
		if m.vanished() {
			if err := m.open(ctx); err != nil {
				m.fail("reopen", err)
				continue
			}
		} else if err := m.probe(); err != nil {
			m.fail("probe", err)
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
	return back
}
