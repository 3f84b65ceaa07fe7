package depot

import (
	"context"
	"io"

	"depot/store"
)

// An upload stages artifacts in the local store before the catalog records
// them, so before any config lists them. Protected artifacts are skipped by
// the reconciler until their stager releases them; protections are counted,
// since two uploads may stage the same artifact.

// stagingStore is what an upload's staging and undo need from the store.
type stagingStore interface {
	Put(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error)
	Delete(ctx context.Context, d store.Digest) error
}

// Protect keeps ds from the reconciler until Release.
func (s *Sled) Protect(ds []store.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.protected == nil {
		s.protected = make(map[store.Digest]int)
	}
	for _, d := range ds {
		s.protected[d]++
	}
}

// Unprotect drops one protection of each of ds.
func (s *Sled) Unprotect(ds []store.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		if s.protected[d] > 1 {
			s.protected[d]--
		} else {
			delete(s.protected, d)
		}
	}
}

// DropUnwanted deletes each of ds that is neither protected, nor in the
// config, nor in keep: what an undone upload staged. Each is checked under
// the read lock just before its unlink, as the reconciler does, so a config
// or protection that arrived meanwhile wins. It returns the number deleted
// and the first error.
func (s *Sled) DropUnwanted(ctx context.Context, ds []store.Digest, keep map[store.Digest]int64) (int, error) {
	var st stagingStore = s.st
	var firstErr error
	n := 0
	for _, d := range ds {
		if _, kept := keep[d]; kept {
			continue
		}
		s.mu.RLock()
		if s.protected[d] > 0 || (s.managed && s.wanted[d]) {
			s.mu.RUnlock()
			continue
		}
		err := st.Delete(ctx, d)
		s.mu.RUnlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err == nil {
			n++
		}
	}
	return n, firstErr
}

// Stage writes d to the store without the config checks of Put. The caller
// protected d first.
func (s *Sled) Stage(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error) {
	var st stagingStore = s.st
	return st.Put(ctx, d, body, size)
}
