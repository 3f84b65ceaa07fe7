package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
)

// Open returns d from the first healthy mirror that holds it, falling back
// to the next when a file cannot be opened or has the wrong size (scrub
// repairs those). The caller closes Blob.File. ErrNotFound when no healthy
// mirror holds d; ErrNoMirrors when none is healthy.
func (s *Store) Open(ctx context.Context, d Digest) (*Blob, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	anyHealthy := false
	var busy error
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
			if isResourceErr(err) {
				busy = err
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
	if busy != nil {
		return nil, fmt.Errorf("open %s: %w", d, busyErr(busy))
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
