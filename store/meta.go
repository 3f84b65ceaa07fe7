package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
)

// Small documents (the artifact config ledger) are kept beside the
// artifacts on every mirror, so each mirror holds its own copy (Open still
// needs every mirror to open; see the package doc). The store only writes and reads them atomically; what they mean and
// which copy wins is the caller's business.

var metaName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

const maxMetaSize = 64 << 20

// MetaCopy is one mirror's copy of a document.
type MetaCopy struct {
	Mirror string
	Data   []byte
	Err    error // set when the copy exists but could not be read
}

// WriteMeta writes data as the document name on every healthy mirror: temp
// file, fsync, rename, fsync the folder. It returns how many mirrors hold the
// new copy, and an error only when none does. A mirror that fails is marked
// unhealthy. Safe for concurrent use, but concurrent writers of the same
// name race (the caller serialises them).
func (s *Store) WriteMeta(ctx context.Context, name string, data []byte) (int, error) {
	if !metaName.MatchString(name) {
		return 0, fmt.Errorf("write meta %q: invalid name", name)
	}
	if s.closed.Load() {
		return 0, ErrClosed
	}
	var errs []error
	written := 0
	for _, m := range s.mirrors {
		if !m.isHealthy() {
			continue
		}
		if err := m.writeMeta(name, data); err != nil {
			m.fail("write "+name, err)
			errs = append(errs, err)
			continue
		}
		written++
	}
	if written == 0 {
		return 0, fmt.Errorf("write meta %s: %w", name, noMirrorErr(errs))
	}
	return written, nil
}

func (m *mirror) writeMeta(name string, data []byte) error {
	dir := filepath.Join(m.root, metaDir)
	tmp, err := m.createTemp(Digest{})
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			_ = m.fs.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	committed = true
	final := filepath.Join(dir, name)
	if err := m.fs.Rename(tmp.Name(), final); err != nil {
		_ = m.fs.Remove(tmp.Name())
		return fmt.Errorf("rename to %s: %w", final, err)
	}
	if err := syncDir(m.fs, dir); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// ReadMeta returns every healthy mirror's copy of the document name, in
// mirror order. Mirrors without a copy are left out.
func (s *Store) ReadMeta(name string) []MetaCopy {
	if !metaName.MatchString(name) {
		return nil
	}
	var out []MetaCopy
	for _, m := range s.mirrors {
		if !m.isHealthy() {
			continue
		}
		path := filepath.Join(m.root, metaDir, name)
		f, err := m.fs.OpenFile(path, os.O_RDONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			out = append(out, MetaCopy{Mirror: m.root, Err: err})
			continue
		}
		data, err := io.ReadAll(io.LimitReader(f, maxMetaSize+1))
		f.Close()
		if err == nil && len(data) > maxMetaSize {
			err = fmt.Errorf("%s is larger than %d bytes", path, maxMetaSize)
		}
		out = append(out, MetaCopy{Mirror: m.root, Data: data, Err: err})
	}
	return out
}

// CreateSpool creates a temp file on the first healthy mirror, for a
// caller that must spool a large upload to disk (a zip needs random
// access). It lives in the mirror's temp folder, so a crash leaves nothing
// behind after the next start-up. The caller closes and removes it.
func (s *Store) CreateSpool(prefix string) (*os.File, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var errs []error
	for _, m := range s.mirrors {
		if !m.isHealthy() {
			continue
		}
		f, err := os.CreateTemp(filepath.Join(m.root, tmpDir), prefix+"*")
		if err != nil {
			m.fail("create spool file", err)
			errs = append(errs, err)
			continue
		}
		return f, nil
	}
	return nil, fmt.Errorf("create spool: %w", noMirrorErr(errs))
}

// SpoolFrom copies body into f (a spool file from CreateSpool) and hashes
// it, hashing and writing in parallel with flat memory, as Put does. It
// returns the bytes copied and their digest. A write error wraps
// ErrNoSpace or ErrNoMirrors; a read error is returned as is (wrapped).
func SpoolFrom(ctx context.Context, f *os.File, body io.Reader) (int64, Digest, error) {
	n, sum, _, err := fanOut(ctx, body, []File{f}, false)
	return n, sum, err
}
