package depot

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"sync"

	"depot/store"
)

// listing caches GET /artifacts. At 100,000 artifacts merging the mirrors'
// indexes and sorting takes a good part of a second, so the merged list is
// kept sorted and brought up to date from the store's log of changed
// digests (a merge of the few that changed); the body is encoded again
// from it only when something changed, and most requests find nothing did.
type listing struct {
	mu    sync.Mutex
	valid bool
	key   listKey
	body  []byte

	// entries is the store's List (before the config's and staging's
	// filter) as of store version ver, sorted by digest.
	entries []listEntry
	ver     uint64
	have    bool
}

type listEntry struct {
	d      store.Digest
	copies int
}

// listKey is what the listing depends on: the store's contents and mirror
// health (Version), and the config (a generation always names the same
// set, see SetConfig).
type listKey struct {
	store   uint64
	managed bool
	gen     uint64
	staging uint64 // what uploads' staging hides (see Protect)
}

// versioned is implemented by *store.Store; a store without it is listed
// on every call.
type versioned interface{ Version() uint64 }

// changeLogged is implemented by *store.Store; a store without it is
// listed afresh whenever its version moves.
type changeLogged interface {
	ChangedSince(v uint64) ([]store.Digest, uint64, bool)
}

// ListJSON returns the body of GET /artifacts ({"generation": …, "list":
// {sha256: copies}}, keys sorted, as encoding/json writes it, with its
// trailing newline), encoded again only when the store or the config
// changed. The caller must not modify it.
func (s *Sled) ListJSON(ctx context.Context) ([]byte, error) {
	l := &s.listing
	l.mu.Lock()
	defer l.mu.Unlock()
	vs, cached := s.st.(versioned)
	if cached {
		v := vs.Version()
		s.mu.RLock()
		k := listKey{store: v, managed: s.managed, gen: s.cfg.Generation, staging: s.stagingVer}
		s.mu.RUnlock()
		if l.valid && l.key == k {
			return l.body, nil
		}
	}
	l.valid = false
	if err := s.refreshEntries(ctx, vs, cached); err != nil {
		return nil, err
	}
	// The config's part of the key is read under the same lock as the
	// filter it keys; the store's part is the version the entries reached
	// (a change after it moves Version again: the next call refreshes).
	s.mu.RLock()
	k := listKey{store: l.ver, managed: s.managed, gen: s.cfg.Generation, staging: s.stagingVer}
	b := s.encodeListLocked(l.body[:0:0], l.entries, len(l.body))
	s.mu.RUnlock()
	l.valid, l.key, l.body = cached, k, b
	return b, nil
}

// refreshEntries brings l.entries up to the store's current version: from
// the store's change log when it reaches back far enough, else from List.
func (s *Sled) refreshEntries(ctx context.Context, vs versioned, cached bool) error {
	l := &s.listing
	if cl, ok := s.st.(changeLogged); ok && cached && l.have {
		if ds, now, ok := cl.ChangedSince(l.ver); ok {
			if now == l.ver {
				return nil
			}
			es, err := s.mergeChanges(ctx, l.entries, ds)
			if err != nil {
				return err
			}
			l.entries, l.ver = es, now
			return nil
		}
	}
	// Version is read before List: a change in between moves it again.
	var v uint64
	if cached {
		v = vs.Version()
	}
	infos, err := s.st.List(ctx)
	if err != nil {
		return err
	}
	es := make([]listEntry, len(infos))
	for i, in := range infos {
		es[i] = listEntry{in.Digest, in.Copies}
	}
	l.entries, l.ver, l.have = es, v, cached
	return nil
}

// mergeChanges returns es (sorted) with the entries of ds as the store has
// them now: updated, added, or dropped when no healthy mirror holds them.
// es is not modified.
func (s *Sled) mergeChanges(ctx context.Context, es []listEntry, ds []store.Digest) ([]listEntry, error) {
	slices.SortFunc(ds, cmpDigest)
	ds = slices.Compact(ds)
	now := make([]listEntry, 0, len(ds))
	for _, d := range ds {
		info, err := s.st.Stat(ctx, d)
		switch {
		case errors.Is(err, store.ErrNotFound):
			now = append(now, listEntry{d, 0})
		case err != nil:
			return nil, err
		default:
			now = append(now, listEntry{d, info.Copies})
		}
	}
	out := make([]listEntry, 0, len(es)+len(now))
	i := 0
	for _, c := range now {
		// Entries before c are unchanged: copied as a run.
		j, found := slices.BinarySearchFunc(es[i:], c.d, func(e listEntry, d store.Digest) int { return cmpDigest(e.d, d) })
		out = append(out, es[i:i+j]...)
		i += j
		if found {
			i++
		}
		if c.copies > 0 {
			out = append(out, c)
		}
	}
	return append(out, es[i:]...), nil
}

func cmpDigest(a, b store.Digest) int { return bytes.Compare(a[:], b[:]) }

// encodeListLocked appends the body of GET /artifacts for es to b, leaving
// out what Sled.List leaves out (not in a managed config; hidden by
// staging). sizeHint is the previous body's length. s.mu is held for
// reading.
func (s *Sled) encodeListLocked(b []byte, es []listEntry, sizeHint int) []byte {
	b = slices.Grow(b, max(sizeHint, 32+len(es)*70))
	b = append(b, `{"generation":`...)
	if s.managed {
		b = strconv.AppendUint(b, s.cfg.Generation, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"list":{`...)
	filter := s.managed || len(s.staging) > 0
	first := true
	for _, e := range es {
		if filter && (s.managed && !s.wanted[e.d] || s.hiddenLocked(e.d)) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = hex.AppendEncode(b, e.d[:])
		b = append(b, `":`...)
		b = strconv.AppendInt(b, int64(e.copies), 10)
	}
	return append(b, "}}\n"...)
}
