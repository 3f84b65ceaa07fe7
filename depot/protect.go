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
//
// An artifact an upload staged that the sled did not hold before is hidden
// (not listed, not served) until the upload is recorded or undone, unless
// the config wants it or someone PUT it meanwhile. Undo deletes only such
// artifacts, so a copy written by hand before or during the upload stays.

// stagingEntry is one digest that uploads staged while the sled lacked it.
type stagingEntry struct {
	n       int  // uploads that staged it fresh
	claimed bool // written by a PUT or copy meanwhile: visible, and undo keeps it
}

// stagingStore is what an upload's staging and undo need from the store.
type stagingStore interface {
	Put(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error)
	Delete(ctx context.Context, d store.Digest) error
}

// Protect keeps ds from the reconciler until Unprotect, and hides those
// the sled does not hold yet (or holds only because another upload staged
// them) until Unstage. It returns those already present: undo keeps them.
func (s *Sled) Protect(ctx context.Context, ds []store.Digest) (present []store.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.protected == nil {
		s.protected = make(map[store.Digest]int)
	}
	if s.staging == nil {
		s.staging = make(map[store.Digest]*stagingEntry)
	}
	for _, d := range ds {
		s.protected[d]++
		e := s.staging[d]
		if e == nil {
			if _, err := s.st.Stat(ctx, d); err == nil {
				present = append(present, d)
				continue
			}
			e = &stagingEntry{}
			s.staging[d] = e
		} else if e.claimed {
			present = append(present, d)
			continue
		}
		e.n++
	}
	if len(present) < len(ds) {
		s.stagingVer++
	}
	return present
}

// Unstage ends the hiding of ds (what Protect did not report present),
// once the upload that staged them is recorded or undone.
func (s *Sled) Unstage(ds []store.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		e := s.staging[d]
		if e == nil {
			continue
		}
		if e.n--; e.n <= 0 {
			delete(s.staging, d)
		}
	}
	s.stagingVer++
}

// claim marks d, just written by a PUT or copy, as no longer only staged.
func (s *Sled) claim(d store.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.staging[d]; e != nil && !e.claimed {
		e.claimed = true
		s.stagingVer++
	}
}

// hiddenLocked reports whether d is only staged: written by an upload not
// yet recorded, neither wanted by the config nor written by anyone else.
// The caller holds mu.
func (s *Sled) hiddenLocked(d store.Digest) bool {
	e := s.staging[d]
	return e != nil && !e.claimed && !(s.managed && s.wanted[d])
}

func (s *Sled) hidden(d store.Digest) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hiddenLocked(d)
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
// config, nor in keep, nor written by a PUT or copy since it was staged:
// what an undone upload staged. Each is checked under
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
		if s.protected[d] > 0 || (s.managed && s.wanted[d]) || (s.staging[d] != nil && s.staging[d].claimed) {
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
