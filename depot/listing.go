package depot

import (
	"context"
	"strconv"
	"sync"
)

// listing caches the encoded body of GET /artifacts. At 100,000 artifacts
// merging the mirrors' indexes, sorting and encoding takes a good part of a
// second, and most requests find nothing changed since the last one.
type listing struct {
	mu    sync.Mutex
	valid bool
	key   listKey
	body  []byte
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

// ListJSON returns the body of GET /artifacts ({"generation": …, "list":
// {sha256: copies}}, keys sorted, as encoding/json writes it, with its
// trailing newline), encoded again only when the store or the config
// changed. The caller must not modify it.
func (s *Sled) ListJSON(ctx context.Context) ([]byte, error) {
	vs, ok := s.st.(versioned)
	key := func() listKey {
		k := listKey{}
		if ok {
			k.store = vs.Version()
		}
		s.mu.RLock()
		k.managed, k.gen, k.staging = s.managed, s.cfg.Generation, s.stagingVer
		s.mu.RUnlock()
		return k
	}
	s.listing.mu.Lock()
	defer s.listing.mu.Unlock()
	// The key is read before the list: a change that lands in between
	// moves it again, so the next call encodes afresh.
	k := key()
	if ok && s.listing.valid && s.listing.key == k {
		return s.listing.body, nil
	}
	infos, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 32+len(infos)*72)
	b = append(b, `{"generation":`...)
	if k.managed {
		b = strconv.AppendUint(b, k.gen, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"list":{`...)
	for i, in := range infos {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, in.Digest.String()...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, int64(in.Copies), 10)
	}
	b = append(b, "}}\n"...)
	s.listing.valid, s.listing.key, s.listing.body = true, k, b
	return b, nil
}
