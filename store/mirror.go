package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Mirror layout. Everything a mirror needs to bring the sled back lives
// under its root, so any one mirror alone is enough:
//
//	<root>/index.db                 bbolt index (also the mirror's lock)
//	<root>/artifacts/<xx>/<sha256>  artifact files, xx = first two hex digits
//	<root>/tmp/                     temp files of writes in flight
//	<root>/meta/                    small documents such as the config ledger
const (
	indexFile    = "index.db"
	artifactsDir = "artifacts"
	tmpDir       = "tmp"
	metaDir      = "meta"
)

var artifactName = regexp.MustCompile(`^[0-9a-f]{64}$`)
var fanoutName = regexp.MustCompile(`^[0-9a-f]{2}$`)

// mirror is one directory of the store. Safe for concurrent use; mu guards
// every field below it.
type mirror struct {
	root        string
	fs          FS
	log         *slog.Logger
	lockTimeout time.Duration

	mu        sync.RWMutex
	db        *bolt.DB
	index     map[Digest]record
	bytes     int64
	healthy   bool
	lastErr   string
	lastErrAt time.Time
	dbInode   uint64
	// pending are deletes this mirror missed while it was failing; they
	// are applied before it serves again, so a flaky mirror cannot bring
	// back (or refill the others with) what was deleted.
	pending map[Digest]bool
}

// setHealthy marks the mirror healthy and clears its last error.
func (m *mirror) setHealthy() {
	m.mu.Lock()
	m.healthy, m.lastErr, m.lastErrAt = true, "", time.Time{}
	m.mu.Unlock()
}

// deferDelete remembers a delete the mirror could not do now.
func (m *mirror) deferDelete(d Digest) {
	m.mu.Lock()
	if m.pending == nil {
		m.pending = make(map[Digest]bool)
	}
	m.pending[d] = true
	m.mu.Unlock()
}

// applyPending does the deletes the mirror missed. The caller holds no
// digest lock; each delete takes its own.
func (m *mirror) applyPending(locks *[256]sync.Mutex) error {
	m.mu.RLock()
	ds := make([]Digest, 0, len(m.pending))
	for d := range m.pending {
		ds = append(ds, d)
	}
	m.mu.RUnlock()
	for _, d := range ds {
		locks[d[0]].Lock()
		err := m.remove(d)
		locks[d[0]].Unlock()
		if err != nil {
			return err
		}
		m.mu.Lock()
		delete(m.pending, d)
		m.mu.Unlock()
	}
	return nil
}

func (m *mirror) artifactPath(d Digest) string {
	h := d.String()
	return filepath.Join(m.root, artifactsDir, h[:2], h)
}

// open prepares the mirror: creates its folders, locks and opens its index,
// clears temp files and reconciles index and files. It is also how a mirror
// that vanished and came back is brought in again. It leaves the mirror
// unhealthy: the caller marks it healthy once it may serve.
func (m *mirror) open(ctx context.Context) error {
	if err := m.fs.MkdirAll(filepath.Join(m.root, tmpDir), 0o755); err != nil {
		return fmt.Errorf("create mirror %s: %w", m.root, err)
	}
	if err := m.fs.MkdirAll(filepath.Join(m.root, metaDir), 0o755); err != nil {
		return fmt.Errorf("create mirror %s: %w", m.root, err)
	}
	// Fan-out folders are made on first use (publish): making all 256 up
	// front costs a third of a second on some file systems.
	if err := m.fs.MkdirAll(filepath.Join(m.root, artifactsDir), 0o755); err != nil {
		return fmt.Errorf("create mirror %s: %w", m.root, err)
	}
	dbPath := filepath.Join(m.root, indexFile)
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: m.lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("open index of mirror %s: %w", m.root, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("open index of mirror %s: %w", m.root, err)
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketArtifacts)
		return err
	}); err != nil {
		db.Close()
		return fmt.Errorf("init index of mirror %s: %w", m.root, err)
	}
	ino, _ := inode(dbPath)

	if err := m.clearTemp(); err != nil {
		db.Close()
		return err
	}
	index, err := m.reconcile(ctx, db)
	if err != nil {
		db.Close()
		return err
	}
	var total int64
	for _, r := range index {
		total += r.Size
	}

	m.mu.Lock()
	old := m.db
	m.db, m.index, m.bytes, m.dbInode = db, index, total, ino
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (m *mirror) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db == nil {
		return nil
	}
	err := m.db.Close()
	m.db = nil
	m.healthy = false
	return err
}

// clearTemp removes what writes in flight left behind when the process died.
// Called only while the mirror's lock is held and before any write starts.
func (m *mirror) clearTemp() error {
	dir := filepath.Join(m.root, tmpDir)
	entries, err := m.fs.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list temp files of mirror %s: %w", m.root, err)
	}
	for _, e := range entries {
		if err := m.fs.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove temp file %s: %w", e.Name(), err)
		}
	}
	if len(entries) > 0 {
		m.log.Info("removed temp files left by an earlier run", "mirror", m.root, "count", len(entries))
	}
	return nil
}

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
// pace (may be nil) bounds the read rate.
func hashFile(ctx context.Context, fsys FS, path string, pace *pacer) (Digest, int64, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return Digest{}, 0, err
	}
	defer f.Close()
	h := NewHash()
	n, err := io.Copy(h, pace.reader(ctx, f))
	if err != nil {
		return Digest{}, n, err
	}
	var d Digest
	h.Sum(d[:0])
	return d, n, nil
}

// isHealthy reports whether the mirror takes reads and writes.
func (m *mirror) isHealthy() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.healthy
}

// lookup returns the mirror's record of d, if the mirror is healthy and
// holds it.
func (m *mirror) lookup(d Digest) (record, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.healthy {
		return record{}, false
	}
	r, ok := m.index[d]
	return r, ok
}

// fail marks the mirror unhealthy after an I/O error. It logs only the
// transition, so a dead disk does not flood the log on every request.
func (m *mirror) fail(op string, err error) {
	m.mu.Lock()
	was := m.healthy
	m.healthy = false
	m.lastErr = fmt.Sprintf("%s: %v", op, err)
	m.lastErrAt = time.Now()
	m.mu.Unlock()
	if was {
		m.log.Error("mirror unhealthy", "mirror", m.root, "op", op, "err", err)
	}
}

// createTemp makes a new temp file for a write of d. O_EXCL and a random
// suffix keep concurrent writers of the same digest apart.
func (m *mirror) createTemp(d Digest) (File, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := filepath.Join(m.root, tmpDir, d.String()+"."+hex.EncodeToString(rnd[:]))
	return m.fs.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

// publish makes a verified temp file the artifact: fsync, rename into place,
// fsync the folder, then index. The caller holds the digest's lock.
func (m *mirror) publish(f File, d Digest, size int64) error {
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	final := m.artifactPath(d)
	err := m.fs.Rename(tmp, final)
	if errors.Is(err, fs.ErrNotExist) {
		// First artifact of this fan-out folder: make it, durably.
		dir := filepath.Dir(final)
		if err := m.fs.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := syncDir(m.fs, filepath.Dir(dir)); err != nil {
			return fmt.Errorf("fsync %s: %w", filepath.Dir(dir), err)
		}
		err = m.fs.Rename(tmp, final)
	}
	if err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := syncDir(m.fs, filepath.Dir(final)); err != nil {
		return fmt.Errorf("fsync folder of %s: %w", final, err)
	}
	now := time.Now()
	return m.putRecord(d, record{Size: size, Added: now, Verified: now})
}

func (m *mirror) putRecord(d Digest, r record) error {
	m.mu.RLock()
	db := m.db
	m.mu.RUnlock()
	if db == nil {
		return ErrClosed
	}
	if err := db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketArtifacts).Put(d[:], r.encode())
	}); err != nil {
		return fmt.Errorf("index %s in mirror %s: %w", d, m.root, err)
	}
	m.mu.Lock()
	if old, ok := m.index[d]; ok {
		m.bytes -= old.Size
	}
	m.index[d] = r
	m.bytes += r.Size
	m.mu.Unlock()
	return nil
}

// remove deletes d: the file first, then the entry, so a crash in between
// leaves an entry without a file, which start-up drops (the other order
// would leave a file that start-up adopts again). The caller holds the
// digest's lock.
func (m *mirror) remove(d Digest) error {
	path := m.artifactPath(d)
	err := m.fs.Remove(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if err == nil {
		if err := syncDir(m.fs, filepath.Dir(path)); err != nil {
			return fmt.Errorf("fsync folder of %s: %w", path, err)
		}
	}
	m.mu.RLock()
	db := m.db
	_, indexed := m.index[d]
	m.mu.RUnlock()
	if !indexed {
		return nil
	}
	if db == nil {
		return ErrClosed
	}
	if err := db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketArtifacts).Delete(d[:])
	}); err != nil {
		return fmt.Errorf("unindex %s in mirror %s: %w", d, m.root, err)
	}
	m.mu.Lock()
	if old, ok := m.index[d]; ok {
		m.bytes -= old.Size
		delete(m.index, d)
	}
	m.mu.Unlock()
	return nil
}

// vanished reports whether the mirror's index file is gone or replaced: the
// directory was removed (and perhaps made again) under the running daemon.
func (m *mirror) vanished() bool {
	ino, err := inode(filepath.Join(m.root, indexFile))
	if err != nil {
		return true
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.dbInode != 0 && ino != m.dbInode
}

// probe checks that the mirror can take a write: create, fsync and remove a
// small file in its temp folder.
func (m *mirror) probe() error {
	if m.vanished() {
		return errors.New("index file is gone")
	}
	f, err := m.createTemp(Digest{})
	if err != nil {
		return err
	}
	name := f.Name()
	_, err = f.Write([]byte("probe"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := m.fs.Remove(name); err == nil {
		err = rerr
	}
	return err
}

func (m *mirror) status() MirrorStatus {
	m.mu.RLock()
	st := MirrorStatus{
		Path:          m.root,
		Healthy:       m.healthy,
		Artifacts:     len(m.index),
		Bytes:         m.bytes,
		LastError:     m.lastErr,
		LastErrorTime: m.lastErrAt,
	}
	m.mu.RUnlock()
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(m.root, &sfs); err == nil {
		st.Free = int64(sfs.Bavail) * int64(sfs.Bsize)
	}
	return st
}

func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino, nil
	}
	return 0, nil
}
