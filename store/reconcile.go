package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"
)

// reconcile makes index and files agree: a file without an entry is
// re-hashed and adopted, or removed if it does not hash to its name (or its
// size differs from the entry); an entry without a file is dropped. Files
// whose names do not fit the layout are reported and left alone.
func (m *mirror) reconcile(ctx context.Context, db *bolt.DB) (map[Digest]record, error) {
	index := make(map[Digest]record)
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketArtifacts).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(v)
			if err != nil || len(k) != len(Digest{}) {
				m.log.Warn("dropping malformed index entry", "mirror", m.root, "key", hex.EncodeToString(k))
				return nil
			}
			index[Digest(k)] = r
			return nil
		})
	}); err != nil {
		return nil, fmt.Errorf("read index of mirror %s: %w", m.root, err)
	}

	onDisk := make(map[Digest]int64)
	base := filepath.Join(m.root, artifactsDir)
	fans, err := m.fs.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", base, err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || !fanoutName.MatchString(fan.Name()) {
			m.log.Warn("unexpected entry in mirror, left alone", "path", filepath.Join(base, fan.Name()))
			continue
		}
		files, err := m.fs.ReadDir(filepath.Join(base, fan.Name()))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", filepath.Join(base, fan.Name()), err)
		}
		for _, f := range files {
			name := f.Name()
			if !f.Type().IsRegular() || !artifactName.MatchString(name) || name[:2] != fan.Name() {
				m.log.Warn("unexpected entry in mirror, left alone", "path", filepath.Join(base, fan.Name(), name))
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue // removed while we looked
			}
			d, _ := ParseDigest(name)
			onDisk[d] = info.Size()
		}
	}

	var adopted, removed, dropped int
	now := time.Now()
	put := make(map[Digest]record)
	var del []Digest
	for d, size := range onDisk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, ok := index[d]
		if ok && r.Size == size {
			continue
		}
		// Not indexed (a crash between rename and index), or not the size
		// that was indexed: only the bytes can say what it is.
		path := m.artifactPath(d)
		got, n, err := hashFile(ctx, m.fs, path, nil)
		if err != nil {
			return nil, fmt.Errorf("re-hash %s: %w", path, err)
		}
		if got == d && (!ok || n == r.Size) {
			put[d] = record{Size: n, Added: now, Verified: now}
			adopted++
			continue
		}
		if err := m.fs.Remove(path); err != nil {
			return nil, fmt.Errorf("remove %s: %w", path, err)
		}
		m.log.Warn("removed artifact file that does not hash to its name", "path", path)
		if ok {
			del = append(del, d)
		}
		removed++
	}
	for d := range index {
		if _, ok := onDisk[d]; !ok {
			del = append(del, d)
			dropped++
		}
	}
	if len(put) > 0 || len(del) > 0 {
		if err := db.Update(func(tx *bolt.Tx) error {
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
		for _, dir := range []string{base} {
			_ = syncDir(m.fs, dir)
		}
	}
	m.log.Info("mirror ready", "mirror", m.root, "artifacts", len(index),
		"adopted", adopted, "removed", removed, "dropped_entries", dropped)
	return index, nil
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
