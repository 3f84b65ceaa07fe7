package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"
)

// reconcile makes index and files agree, in one pass over the mirror's
// folders that reads names only: where a file's name is in the index, the
// index is trusted (its size is checked on every read and its bytes by
// scrub). A file without an entry (a crash between rename and index) is
// re-hashed and adopted, or removed if it does not hash to its name; an
// entry without a file is dropped. Files whose names do not fit the
// layout are reported and left alone. index is what the index holds; the
// reconciled index is returned.
func (m *mirror) reconcile(ctx context.Context, db *bolt.DB, index map[Digest]record) (map[Digest]record, error) {
	listed, err := m.listArtifacts()
	if err != nil {
		return nil, err
	}
	var adopted, removed, dropped int
	now := time.Now()
	put := make(map[Digest]record)
	var del []Digest
	touched := make(map[string]bool) // fan-out folders a file was removed from
	var unindexed []Digest
	matched := 0
	for _, fan := range listed {
		for _, d := range fan {
			if _, ok := index[d]; ok {
				matched++
			} else {
				unindexed = append(unindexed, d)
			}
		}
	}
	for _, d := range unindexed {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := m.artifactPath(d)
		got, n, err := hashFile(ctx, m.fs, path, nil)
		if err != nil {
			return nil, fmt.Errorf("re-hash %s: %w", path, err)
		}
		if got == d {
			put[d] = record{Size: n, Added: now, Verified: now}
			adopted++
			continue
		}
		if err := m.fs.Remove(path); err != nil {
			return nil, fmt.Errorf("remove %s: %w", path, err)
		}
		touched[filepath.Dir(path)] = true
		m.log.Warn("removed artifact file that does not hash to its name", "path", path)
		removed++
	}
	if matched < len(index) {
		// Some entries have no file: only now is a set of the names needed.
		onDisk := make(map[Digest]bool, matched)
		for _, fan := range listed {
			for _, d := range fan {
				onDisk[d] = true
			}
		}
		for d := range index {
			if !onDisk[d] {
				del = append(del, d)
				dropped++
			}
		}
	}
	for dir := range touched {
		if err := syncDir(m.fs, dir); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", dir, err)
		}
	}
	if len(put) > 0 || len(del) > 0 {
		if err := m.indexUpdate(db, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketArtifacts)
			for d, r := range put {
				if err := b.Put(d[:], r.encode()); err != nil {
					return err
				}
			}
			for _, d := range del {
				if err := b.Delete(d[:]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("update index of mirror %s: %w", m.root, err)
		}
		for d, r := range put {
			index[d] = r
		}
		for _, d := range del {
			delete(index, d)
		}
	}
	m.log.Info("mirror ready", "mirror", m.root, "artifacts", len(index),
		"adopted", adopted, "removed", removed, "dropped_entries", dropped)
	return index, nil
}

// listArtifacts is one pass over the mirror's fan-out folders: the digests
// whose files are there, per folder, by name only (no stat of each file). The folders
// are listed a few at a time, which a cold disk serves faster than one by
// one.
func (m *mirror) listArtifacts() ([][]Digest, error) {
	base := filepath.Join(m.root, artifactsDir)
	fans, err := m.fs.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", base, err)
	}
	var dirs []string
	for _, fan := range fans {
		if !fan.IsDir() || !fanoutName.MatchString(fan.Name()) {
			m.log.Warn("unexpected entry in mirror, left alone", "path", filepath.Join(base, fan.Name()))
			continue
		}
		dirs = append(dirs, fan.Name())
	}
	const workers = 4
	results := make([][]Digest, len(dirs))
	errs := make([]error, len(dirs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i], errs[i] = m.listFan(base, dirs[i])
			}
		}()
	}
	for i := range dirs {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

func (m *mirror) listFan(base, fan string) ([]Digest, error) {
	dir := filepath.Join(base, fan)
	files, err := m.fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := make([]Digest, 0, len(files))
	for _, f := range files {
		name := f.Name()
		d, err := ParseDigest(name) // cheaper than a regexp, same rule
		if err != nil || !f.Type().IsRegular() || name[:2] != fan {
			m.log.Warn("unexpected entry in mirror, left alone", "path", filepath.Join(dir, name))
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// hashFile returns the digest and length of the file at path.
// lim (may be nil) bounds the read rate.
func hashFile(ctx context.Context, fsys FS, path string, lim *rate.Limiter) (Digest, int64, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return Digest{}, 0, err
	}
	defer f.Close()
	h := NewHash()
	n, err := io.Copy(h, paced(ctx, f, lim))
	if err != nil {
		return Digest{}, n, err
	}
	var d Digest
	h.Sum(d[:0])
	return d, n, nil
}
