package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
)

// Small documents (the artifact config ledger) are kept beside the
// artifacts on every mirror, so each mirror holds its own copy. The store
// only writes and reads them atomically; what they mean and which copy
// wins is the caller's business.

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

// CreateSpool creates a temp file on the first healthy mirror, through
// the mirror's FS, for a caller that must spool a large upload to disk (a
// zip needs random access). It lives in the mirror's temp folder, so a
// crash leaves nothing behind after the next start-up. Write to it with
// SpoolFrom; the caller closes and removes it. ErrBusy when the process
// is out of descriptors (no mirror is blamed for that).
func (s *Store) CreateSpool(prefix string) (*os.File, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var errs []error
	for _, m := range s.mirrors {
		if !m.isHealthy() {
			continue
		}
		f, err := m.createSpool(prefix)
		if err != nil {
			m.fail("create spool file", err)
			errs = append(errs, err)
			if isResourceErr(err) {
				break
			}
			continue
		}
		return f, nil
	}
	return nil, fmt.Errorf("create spool: %w", noMirrorErr(errs))
}

func (m *mirror) createSpool(prefix string) (*os.File, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := filepath.Join(m.root, tmpDir, prefix+hex.EncodeToString(rnd[:]))
	f, err := m.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if osf, ok := f.(*os.File); ok {
		return osf, nil
	}
	// A wrapping FS (tests): writes go through it in SpoolFrom; the
	// caller reads the file through the operating system.
	f.Close()
	osf, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		_ = m.fs.Remove(name)
		return nil, err
	}
	return osf, nil
}

// SpoolFrom copies body into f (a spool file from CreateSpool) and hashes
// it, hashing and writing in parallel with flat memory, as Put does. It
// returns the bytes copied and their digest. A write error marks the
// spool's mirror unhealthy (unless the process is out of a resource) and
// wraps ErrNoSpace, ErrBusy or ErrNoMirrors; a read error is returned as
// is (wrapped).
func (s *Store) SpoolFrom(ctx context.Context, f *os.File, body io.Reader) (int64, Digest, error) {
	m := s.mirrorOf(f.Name())
	if m == nil {
		return 0, Digest{}, fmt.Errorf("spool: %s is not a spool file of this store", filepath.Base(f.Name()))
	}
	w, err := m.fs.OpenFile(f.Name(), os.O_WRONLY, 0)
	if err != nil {
		m.fail("open spool file", err)
		return 0, Digest{}, fmt.Errorf("spool: %w", noMirrorErr([]error{err}))
	}
	defer w.Close()
	// Append after whatever the caller wrote through f.
	if off, err := f.Seek(0, io.SeekCurrent); err != nil {
		return 0, Digest{}, fmt.Errorf("spool: %w", err)
	} else if _, err := w.Seek(off, io.SeekStart); err != nil {
		return 0, Digest{}, fmt.Errorf("spool: %w", err)
	}
	n, sum, werrs, err := fanOut(ctx, body, []File{w}, false)
	if err == nil && len(werrs) == 1 && werrs[0] != nil {
		err = noMirrorErr(werrs)
	}
	if err != nil {
		for _, werr := range werrs {
			if werr != nil {
				m.fail("write spool file", werr)
			}
		}
		return n, sum, fmt.Errorf("spool: %w", err)
	}
	if err := w.Close(); err != nil {
		m.fail("write spool file", err)
		return n, sum, fmt.Errorf("spool: %w", noMirrorErr([]error{err}))
	}
	return n, sum, nil
}

// mirrorOf is the mirror whose temp folder holds path, or nil.
func (s *Store) mirrorOf(path string) *mirror {
	for _, m := range s.mirrors {
		if filepath.Dir(path) == filepath.Join(m.root, tmpDir) {
			return m
		}
	}
	return nil
}
