package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// writeResult is what writeCopies did on its target mirrors.
type writeResult struct {
	n        int64   // body bytes read
	written  int     // mirrors that now hold a published, indexed copy
	openErrs []error // one per target whose temp file could not be created
	errs     []error // one per target that failed to write or publish
}

// writeCopies is the store's one durable write path, used by Put and by
// scrub's repair. It opens a temp file (O_EXCL) on each target mirror, in
// that mirror's own tmp folder so the rename stays on one file system;
// streams body once through one hash into all of them; checks length (when
// size >= 0) and digest; then, under d's lock, each copy is fsynced,
// renamed into place, its folder fsynced and only then indexed (publish).
//
// A target that fails is marked unhealthy and the others carry on; its
// error is in the result (openErrs or errs). When hashAll is false,
// reading stops as soon as every target has failed (nothing could come of
// the rest of the body); Put sets it when other mirrors already hold d, so
// a wrong body is still reported. keep, when not nil, is asked under d's lock just before
// publishing: false publishes nothing (scrub uses it so a repair never
// brings back what a delete removed meanwhile).
//
// err is a read, context, length or digest error, or "no target could take
// the write" (ErrNoMirrors or ErrNoSpace) when hashAll is false. On any
// error, and for every copy not published, the temp files are removed.
func (s *Store) writeCopies(ctx context.Context, d Digest, body io.Reader, size int64, targets []*mirror, hashAll bool, keep func() bool) (writeResult, error) {
	var res writeResult
	var files []File
	var writers []*mirror
	for _, m := range targets {
		f, err := m.createTemp(d)
		if err != nil {
			m.fail("create temp file", err)
			res.openErrs = append(res.openErrs, fmt.Errorf("mirror %s: %w", m.root, err))
			continue
		}
		files = append(files, f)
		writers = append(writers, m)
	}
	if len(files) == 0 && !hashAll {
		return res, noMirrorErr(res.openErrs)
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

	n, sum, werrs, err := fanOut(ctx, body, files, hashAll)
	res.n = n
	for i, werr := range werrs {
		if werr != nil {
			writers[i].fail("write", werr)
		}
	}
	if err != nil {
		return res, err
	}
	if size >= 0 && n != size {
		return res, fmt.Errorf("read %d bytes, expected %d: %w", n, size, ErrSizeMismatch)
	}
	if sum != d {
		return res, fmt.Errorf("body hashes to %s: %w", sum, ErrHashMismatch)
	}

	s.locks[d[0]].Lock()
	defer s.locks[d[0]].Unlock()
	if keep != nil && !keep() {
		return res, nil
	}
	var wg sync.WaitGroup
	publishErrs := make([]error, len(files))
	for i, f := range files {
		if werrs[i] != nil {
			publishErrs[i] = werrs[i]
			continue
		}
		committed[i] = true // publish closes the temp file; it is removed below on failure
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
	for _, e := range publishErrs {
		if e == nil {
			res.written++
		} else {
			res.errs = append(res.errs, e)
		}
	}
	return res, nil
}

// createTemp makes a new temp file for a write of d. O_EXCL and a random
// suffix keep concurrent writers of the same digest apart.
func (m *mirror) createTemp(d Digest) (File, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := filepath.Join(m.root, tmpDir, d.String()+"."+hex.EncodeToString(rnd[:]))
	return m.fs.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

// publish makes a verified temp file the artifact: fsync, rename into
// place, fsync the folder, then index; the index commit is shared with
// concurrent writes (see commit.go). The caller holds the digest's lock.
func (m *mirror) publish(f File, d Digest, size int64) error {
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	final := m.artifactPath(d)
	err := m.fs.Rename(tmp, final)
	if errors.Is(err, fs.ErrNotExist) {
		// First artifact of this fan-out folder: make it, durably.
		dir := filepath.Dir(final)
		if err := m.fs.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := syncDir(m.fs, filepath.Dir(dir)); err != nil {
			return fmt.Errorf("fsync %s: %w", filepath.Dir(dir), err)
		}
		err = m.fs.Rename(tmp, final)
	}
	if err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := syncDir(m.fs, filepath.Dir(final)); err != nil {
		return fmt.Errorf("fsync %s: %w", filepath.Dir(final), err)
	}
	now := time.Now()
	return m.indexShared(d, record{Size: size, Added: now, Verified: now})
}

// noMirrorErr sums up why no mirror took a write: ErrBusy if any failure
// was a process resource (EMFILE, ENFILE, ENOMEM), ErrNoSpace if every
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
	for _, e := range causes {
		if isResourceErr(e) {
			sentinel = ErrBusy // the mirrors are fine; the process is short
		}
	}
	return fmt.Errorf("%w: %w", sentinel, errors.Join(causes...))
}

// 256 KiB chunks stay in cache between the read, the hash and the writes
// (BenchmarkStore_PutLarge ran ~10% faster than with 1 MiB chunks).
const (
	chunkSize  = 256 << 10
	chunkDepth = 8 // chunks in flight per Put: bounds memory at 2 MiB
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
	wes := make([]error, len(files)) // the writers' own; werrs is only set from it
	werrs = wes
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
				if wes[i] == nil {
					if _, err := f.Write((*c.buf)[:c.n]); err != nil {
						wes[i] = fmt.Errorf("write %s: %w", f.Name(), err)
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
	closeQueues := sync.OnceFunc(func() {
		close(hq)
		for _, q := range queues {
			close(q)
		}
	})
	// finish waits for every consumer and returns the buffers; after it the
	// hash is complete.
	finish := sync.OnceFunc(func() {
		closeQueues()
		wg.Wait()
		<-hashed
		for range chunkDepth {
			if b := <-free; b != nil {
				chunkPool.Put(b)
			}
		}
	})
	// On cancellation the writers are not waited for: one may hang on a
	// dead disk. They stop at their next chunk; their buffers are left to
	// the garbage collector.
	abandoned := false
	abandon := func(err error) (int64, Digest, []error, error) {
		abandoned = true
		closeQueues()
		return n, Digest{}, nil, err
	}
	defer func() {
		if !abandoned {
			finish()
		}
	}()

	for {
		if err := ctx.Err(); err != nil {
			return abandon(err)
		}
		if len(files) > 0 && alive.Load() == 0 && !keepReading {
			return n, sum, werrs, noMirrorErr(werrs)
		}
		var buf *[]byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			return abandon(ctx.Err())
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
