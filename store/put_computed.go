package store

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// PutComputed stores body under the digest it hashes to, for content whose
// hash is not known before it is read (an image split out of a larger,
// signed artifact). Like Put it reads body once, hashing it while every
// healthy mirror writes it to a temp file. size is the declared length or
// -1. Once the digest is known, and before anything is published, admit is
// called with it and the length: an error from admit aborts the write
// (nothing is left on any mirror) and is returned; nil lets the copies be
// published (fsync, rename, fsync folder, index), except on mirrors that
// already hold the digest. Safe for concurrent use.
func (s *Store) PutComputed(ctx context.Context, body io.Reader, size int64,
	admit func(d Digest, n int64) error) (Digest, PutResult, error) {
	if s.closed.Load() {
		return Digest{}, PutResult{}, ErrClosed
	}
	res := PutResult{Datasets: len(s.mirrors)}
	var files []File
	var writers []*mirror
	var openErrs []error
	for _, m := range s.mirrors {
		if !m.isHealthy() {
			continue
		}
		f, err := m.createTemp(Digest{})
		if err != nil {
			m.fail("create temp file", err)
			openErrs = append(openErrs, fmt.Errorf("mirror %s: %w", m.root, err))
			continue
		}
		files = append(files, f)
		writers = append(writers, m)
	}
	if len(files) == 0 {
		return Digest{}, res, fmt.Errorf("put computed: %w", noMirrorErr(openErrs))
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

	n, sum, werrs, err := fanOut(ctx, body, files, false)
	for i, werr := range werrs {
		if werr != nil {
			writers[i].fail("write", werr)
		}
	}
	if err != nil {
		return Digest{}, res, fmt.Errorf("put computed: %w", err)
	}
	if size >= 0 && n != size {
		return Digest{}, res, fmt.Errorf("put %s: read %d bytes, declared %d: %w", sum, n, size, ErrSizeMismatch)
	}
	if err := admit(sum, n); err != nil {
		return sum, res, err
	}

	var wg sync.WaitGroup
	publishErrs := make([]error, len(files))
	have := 0
	s.locks[sum[0]].Lock()
	for i, f := range files {
		if werrs[i] != nil {
			publishErrs[i] = werrs[i]
			continue
		}
		if _, ok := writers[i].lookup(sum); ok {
			have++ // the temp copy is dropped by the deferred cleanup
			continue
		}
		committed[i] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := writers[i].publish(f, sum, n); err != nil {
				_ = writers[i].fs.Remove(f.Name())
				writers[i].fail("publish", err)
				publishErrs[i] = err
			}
		}()
	}
	wg.Wait()
	s.locks[sum[0]].Unlock()
	for i, e := range publishErrs {
		if e == nil && committed[i] {
			res.Written++
		}
	}
	res.SuccessfulWrites = have + res.Written
	if res.SuccessfulWrites == 0 {
		return sum, res, fmt.Errorf("put %s: %w", sum, noMirrorErr(append(openErrs, publishErrs...)))
	}
	return sum, res, nil
}
