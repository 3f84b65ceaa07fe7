package store

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Pending is content written to a temp file on every healthy mirror and
// hashed, not yet published: invisible to Open, Stat and List until Commit.
// Exactly one of Commit or Abort must be called. Not safe for concurrent
// use; distinct Pendings are.
type Pending struct {
	s       *Store
	digest  Digest
	size    int64
	files   []File
	writers []*mirror
	werrs   []error
	openErr []error
	done    bool
}

// PutPending reads body once, hashing it while every healthy mirror writes
// it to a temp file, for content whose hash is not known before it is read
// (an image split out of a larger signed artifact, verified only once that
// artifact has been read to its end). size is the declared length or -1.
// On error nothing is left on any mirror.
func (s *Store) PutPending(ctx context.Context, body io.Reader, size int64) (*Pending, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	p := &Pending{s: s}
	for _, m := range s.mirrors {
		if !m.isHealthy() {
			continue
		}
		f, err := m.createTemp(Digest{})
		if err != nil {
			m.fail("create temp file", err)
			p.openErr = append(p.openErr, fmt.Errorf("mirror %s: %w", m.root, err))
			continue
		}
		p.files = append(p.files, f)
		p.writers = append(p.writers, m)
	}
	if len(p.files) == 0 {
		return nil, fmt.Errorf("put pending: %w", noMirrorErr(p.openErr))
	}
	n, sum, werrs, err := fanOut(ctx, body, p.files, false)
	p.digest, p.size, p.werrs = sum, n, werrs
	for i, werr := range werrs {
		if werr != nil {
			p.writers[i].fail("write", werr)
		}
	}
	if err != nil {
		p.Abort()
		return nil, fmt.Errorf("put pending: %w", err)
	}
	if size >= 0 && n != size {
		p.Abort()
		return nil, fmt.Errorf("put %s: read %d bytes, declared %d: %w", sum, n, size, ErrSizeMismatch)
	}
	return p, nil
}

// Digest is the content's sha256.
func (p *Pending) Digest() Digest { return p.digest }

// Size is the content's length.
func (p *Pending) Size() int64 { return p.size }

// Abort removes the temp files. Safe to call after Commit (it does nothing).
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	for i, f := range p.files {
		f.Close()
		_ = p.writers[i].fs.Remove(f.Name())
	}
}

// Commit publishes the content on every mirror that wrote it and lacks it
// (fsync, rename, fsync folder, index), as Put does. It succeeds when at
// least one mirror holds a verified copy.
func (p *Pending) Commit() (PutResult, error) {
	res := PutResult{Datasets: len(p.s.mirrors)}
	if p.done {
		return res, fmt.Errorf("commit %s: already committed or aborted", p.digest)
	}
	p.done = true
	if p.s.closed.Load() {
		p.done = false
		p.Abort()
		return res, ErrClosed
	}
	d := p.digest
	var wg sync.WaitGroup
	publishErrs := make([]error, len(p.files))
	committed := make([]bool, len(p.files))
	have := 0
	p.s.locks[d[0]].Lock()
	for i, f := range p.files {
		if p.werrs[i] != nil {
			publishErrs[i] = p.werrs[i]
			continue
		}
		if _, ok := p.writers[i].lookup(d); ok {
			have++
			continue
		}
		committed[i] = true // publish closes or removes the temp file itself
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.writers[i].publish(f, d, p.size); err != nil {
				_ = p.writers[i].fs.Remove(f.Name())
				p.writers[i].fail("publish", err)
				publishErrs[i] = err
			}
		}()
	}
	wg.Wait()
	p.s.locks[d[0]].Unlock()
	for i, f := range p.files {
		if !committed[i] {
			f.Close()
			_ = p.writers[i].fs.Remove(f.Name())
		} else if publishErrs[i] == nil {
			res.Written++
		}
	}
	res.SuccessfulWrites = have + res.Written
	if res.SuccessfulWrites == 0 {
		return res, fmt.Errorf("put %s: %w", d, noMirrorErr(append(p.openErr, publishErrs...)))
	}
	return res, nil
}

// PutComputed is PutPending, then admit with the digest and length, then
// Commit: admit runs before anything is published, and an error from it
// aborts the write (nothing is left) and is returned.
func (s *Store) PutComputed(ctx context.Context, body io.Reader, size int64,
	admit func(d Digest, n int64) error) (Digest, PutResult, error) {
	p, err := s.PutPending(ctx, body, size)
	if err != nil {
		return Digest{}, PutResult{Datasets: len(s.mirrors)}, err
	}
	if err := admit(p.digest, p.size); err != nil {
		p.Abort()
		return p.digest, PutResult{Datasets: len(s.mirrors)}, err
	}
	res, err := p.Commit()
	return p.digest, res, err
}
