package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"depot/internal/trigger"
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
// files and reconciles index and files. A mirror held by another process
// fails with ErrLocked; a mirror that cannot be created fails Open, so a
// typo in a path is not silently a degraded sled.
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
		// A mirror folder is not made again here: if its disk is unmounted,
		// the empty mount point must not silently become a mirror.
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

// Put stores body under d in every healthy mirror. size is the declared
// length, or -1 when unknown. The body is read once and hashed once while
// every mirror that lacks d writes it in parallel into a temp file; after
// the digest and length check out, each mirror fsyncs, renames, fsyncs the
// folder and indexes. Put succeeds when at least one mirror holds a verified
// copy. A mirror that fails is marked unhealthy and the others carry on.
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

	// Open a temp file on every target mirror first; a mirror that cannot
	// even do that is out of this write.
	var files []File
	var writers []*mirror
	var openErrs []error
	for _, m := range targets {
		f, err := m.createTemp(d)
		if err != nil {
			m.fail("create temp file", err)
			openErrs = append(openErrs, fmt.Errorf("mirror %s: %w", m.root, err))
			continue
		}
		files = append(files, f)
		writers = append(writers, m)
	}
	if len(files) == 0 && len(have) == 0 {
		return res, fmt.Errorf("put %s: %w", d, noMirrorErr(openErrs))
	}
	committed := make([]bool, len(files))
	defer func() {
		for i, f := range files {
			if !committed[i] {
				f.Close()
				_ = writers[i].fs.Remove(f.Name())
			}
		}
	}()

	n, sum, werrs, err := fanOut(ctx, body, files, len(have) > 0)
	for i, werr := range werrs {
		if werr != nil {
			writers[i].fail("write", werr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("put %s: %w", d, err)
	}
	if size >= 0 && n != size {
		return res, fmt.Errorf("put %s: read %d bytes, declared %d: %w", d, n, size, ErrSizeMismatch)
	}
	if sum != d {
		return res, fmt.Errorf("put %s: body hashes to %s: %w", d, sum, ErrHashMismatch)
	}

	var wg sync.WaitGroup
	publishErrs := make([]error, len(files))
	s.locks[d[0]].Lock()
	for i, f := range files {
		if werrs[i] != nil {
			publishErrs[i] = werrs[i]
			continue
		}
		committed[i] = true // publish closes or removes the temp file itself
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := writers[i].publish(f, d, n); err != nil {
				_ = writers[i].fs.Remove(f.Name())
				writers[i].fail("publish", err)
				publishErrs[i] = err
			}
		}()
	}
	wg.Wait()
	s.locks[d[0]].Unlock()

	res.Written = 0
	for _, e := range publishErrs {
		if e == nil {
			res.Written++
		}
	}
	res.SuccessfulWrites = len(have) + res.Written
	if res.SuccessfulWrites == 0 {
		return res, fmt.Errorf("put %s: %w", d, noMirrorErr(append(openErrs, publishErrs...)))
	}
	return res, nil
}

// noMirrorErr sums up why no mirror took a write: ErrNoSpace if every
// failure was ENOSPC, else ErrNoMirrors; the causes stay wrapped.
func noMirrorErr(errs []error) error {
	var causes []error
	allSpace := true
	for _, e := range errs {
		if e == nil {
			continue
		}
		causes = append(causes, e)
		if !errors.Is(e, syscall.ENOSPC) {
			allSpace = false
		}
	}
	sentinel := ErrNoMirrors
	if allSpace && len(causes) > 0 {
		sentinel = ErrNoSpace
	}
	return fmt.Errorf("%w: %w", sentinel, errors.Join(causes...))
}

const (
	chunkSize  = 1 << 20
	chunkDepth = 4 // chunks in flight per Put: bounds memory at 4 MiB
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

type chunk struct {
	buf     *[]byte
	n       int
	pending atomic.Int32
}

// fanOut reads body once, hashes it, and writes every chunk to every file
// in parallel (one goroutine per file, and one for the hash, so hashing
// overlaps reading and writing). At most chunkDepth chunks are in
// flight, so memory stays flat whatever the size. A file whose write fails
// stops receiving data; its error is returned in werrs. Reading stops early
// only when every file failed and keepReading is false (nothing could come
// of the rest of the body). err is a read or context error.
func fanOut(ctx context.Context, body io.Reader, files []File, keepReading bool) (n int64, sum Digest, werrs []error, err error) {
	h := NewHash()
	werrs = make([]error, len(files))
	// free holds this call's buffers once every writer is done with them;
	// its capacity is the bound on chunks in flight.
	free := make(chan *[]byte, chunkDepth)
	for range chunkDepth {
		free <- nil // nil: not yet taken from the pool
	}
	release := func(c *chunk) {
		if c.pending.Add(-1) == 0 {
			free <- c.buf
		}
	}
	var alive atomic.Int32
	alive.Store(int32(len(files)))
	queues := make([]chan *chunk, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		q := make(chan *chunk, chunkDepth)
		queues[i] = q
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range q {
				if werrs[i] == nil {
					if _, err := f.Write((*c.buf)[:c.n]); err != nil {
						werrs[i] = fmt.Errorf("write %s: %w", f.Name(), err)
						alive.Add(-1)
					}
				}
				release(c)
			}
		}()
	}
	hq := make(chan *chunk, chunkDepth)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for c := range hq {
			h.Write((*c.buf)[:c.n])
			release(c)
		}
	}()
	// finish waits for every consumer and returns the buffers; after it the
	// hash is complete.
	finish := sync.OnceFunc(func() {
		close(hq)
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
		<-hashed
		for range chunkDepth {
			if b := <-free; b != nil {
				chunkPool.Put(b)
			}
		}
	})
	defer finish()

	for {
		if err := ctx.Err(); err != nil {
			return n, sum, werrs, err
		}
		if len(files) > 0 && alive.Load() == 0 && !keepReading {
			return n, sum, werrs, noMirrorErr(werrs)
		}
		var buf *[]byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			return n, sum, werrs, ctx.Err()
		}
		if buf == nil {
			buf = chunkPool.Get().(*[]byte)
		}
		m, rerr := io.ReadFull(body, *buf)
		c := &chunk{buf: buf, n: m}
		c.pending.Store(1)
		if m > 0 {
			n += int64(m)
			c.pending.Add(int32(len(files)) + 1)
			hq <- c
			for _, q := range queues {
				q <- c
			}
		}
		release(c)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return n, sum, werrs, fmt.Errorf("read body: %w", rerr)
		}
	}
	finish()
	h.Sum(sum[:0])
	return n, sum, werrs, nil
}

// Open returns d from the first healthy mirror that holds it, falling back
// to the next when a file cannot be opened or has the wrong size (scrub
// repairs those). The caller closes Blob.File. ErrNotFound when no healthy
// mirror holds d; ErrNoMirrors when none is healthy.
func (s *Store) Open(ctx context.Context, d Digest) (*Blob, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	anyHealthy := false
	for _, m := range s.mirrors {
		if m.isHealthy() {
			anyHealthy = true
		}
		r, ok := m.lookup(d)
		if !ok {
			continue
		}
		path := m.artifactPath(d)
		f, err := m.fs.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !m.vanished() {
				s.log.Warn("indexed artifact file is missing", "path", path)
				continue
			}
			m.fail("open", err)
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			m.fail("stat", err)
			continue
		}
		if fi.Size() != r.Size {
			f.Close()
			s.log.Warn("artifact file has the wrong size, skipped", "path", path, "size", fi.Size(), "indexed", r.Size)
			continue
		}
		return &Blob{File: f, Size: r.Size, ModTime: r.Added, Mirror: m.root}, nil
	}
	if !anyHealthy {
		return nil, fmt.Errorf("open %s: %w", d, ErrNoMirrors)
	}
	return nil, fmt.Errorf("open %s: %w", d, ErrNotFound)
}

// Stat returns what the healthy mirrors know of d, or ErrNotFound.
func (s *Store) Stat(ctx context.Context, d Digest) (Info, error) {
	info := Info{Digest: d}
	for _, m := range s.mirrors {
		r, ok := m.lookup(d)
		if !ok {
			continue
		}
		if info.Copies == 0 {
			info.Size, info.Added, info.Verified = r.Size, r.Added, r.Verified
		}
		info.Copies++
	}
	if info.Copies == 0 {
		return info, fmt.Errorf("stat %s: %w", d, ErrNotFound)
	}
	return info, nil
}

// Delete removes d from every mirror, healthy or not. Absent is not an
// error. A mirror that cannot remove it now is marked unhealthy and keeps
// the delete pending: it is done before that mirror serves again (in this
// process; after a restart the mirror is reconciled afresh). Delete fails
// only when no mirror could remove d, and the delete stays pending then
// too.
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

// List returns every artifact a healthy mirror holds, sorted by digest,
// with the number of healthy mirrors holding each.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	all := make(map[Digest]Info)
	for _, m := range s.mirrors {
		m.mu.RLock()
		if m.healthy {
			for d, r := range m.index {
				info, ok := all[d]
				if !ok {
					info = Info{Digest: d, Size: r.Size, Added: r.Added, Verified: r.Verified}
				}
				info.Copies++
				all[d] = info
			}
		}
		m.mu.RUnlock()
	}
	out := make([]Info, 0, len(all))
	for _, info := range all {
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Digest[:], out[j].Digest[:]) < 0 })
	return out, nil
}

// Mirrors returns each mirror's status in configuration order.
func (s *Store) Mirrors() []MirrorStatus {
	out := make([]MirrorStatus, len(s.mirrors))
	for i, m := range s.mirrors {
		out[i] = m.status()
	}
	return out
}
