package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Mirror layout. Everything a mirror holds lives under its root: files,
// index and meta documents, a complete copy of the sled's artifacts. A
// mirror that cannot be opened is left unhealthy and the others serve (see
// Open).
//
//	<root>/index.db                 bbolt index (also the mirror's lock)
//	<root>/artifacts/<xx>/<sha256>  artifact files, xx = first two hex digits
//	<root>/tmp/                     temp files of writes in flight
//	<root>/meta/                    small documents such as the config ledger
//	<root>/meta/.depot-mirror       marker: this folder is a mirror (see marker.go)
const (
	indexFile    = "index.db"
	artifactsDir = "artifacts"
	tmpDir       = "tmp"
	metaDir      = "meta"
)

var fanoutName = regexp.MustCompile(`^[0-9a-f]{2}$`)

// mirror is one directory of the store. Safe for concurrent use; mu guards
// every field below it.
type mirror struct {
	root        string
	fs          FS
	log         *slog.Logger
	lockTimeout time.Duration
	changes     *changeLog // the store's (Store.Version)
	commit      committer

	mu        sync.RWMutex
	db        *bolt.DB
	index     map[Digest]record
	bytes     int64
	healthy   bool
	lastErr   string
	lastErrAt time.Time
	dbInode   uint64
	// rebuilding is set while the mirror's index is rebuilt from its files
	// (see rebuild); the health check leaves it alone meanwhile.
	rebuilding bool
	// pending are deletes this mirror missed while it was failing; they
	// are applied before it serves again, so it cannot refill the others
	// with what was deleted meanwhile. The mirrors that did the delete keep
	// it as a tombstone in their index, so it survives a restart.
	pending map[Digest]bool
}

// setHealthy marks the mirror healthy and clears its last error.
func (m *mirror) setHealthy() {
	m.mu.Lock()
	m.healthy, m.lastErr, m.lastErrAt = true, "", time.Time{}
	m.mu.Unlock()
	m.changed()
}

func (m *mirror) artifactPath(d Digest) string {
	h := d.String()
	return filepath.Join(m.root, artifactsDir, h[:2], h)
}

// open prepares the mirror: checks its marker (or, with create, writes
// it), creates its folders, locks, opens and reads
// its index, clears temp files and reconciles index and files. It is also
// how a mirror that vanished and came back is brought in again. It leaves
// the mirror unhealthy: the caller marks it healthy once it may serve. An
// index bbolt cannot read is errIndexCorrupt (see rebuild).
func (m *mirror) open(ctx context.Context, create bool) error {
	if !create && !m.hasMarker() {
		return fmt.Errorf("mirror %s: %w", m.root, errNoMarker)
	}
	for _, dir := range []string{tmpDir, metaDir, artifactsDir} {
		// Fan-out folders are made on first use (publish): making all 256
		// up front costs a third of a second on some file systems.
		if err := m.fs.MkdirAll(filepath.Join(m.root, dir), 0o755); err != nil {
			return fmt.Errorf("create mirror %s: %w", m.root, err)
		}
	}
	if create && !m.hasMarker() {
		if err := m.writeMarker(); err != nil {
			return err
		}
	}
	db, index, err := m.openIndex()
	if err != nil {
		return err
	}
	dbPath := filepath.Join(m.root, indexFile)
	ino, err := m.inode(dbPath)
	if err != nil {
		// Without the inode a replaced folder could not be noticed.
		closeQuietly(db)
		return fmt.Errorf("stat index of mirror %s: %w", m.root, err)
	}
	if err := m.clearTemp(); err != nil {
		closeQuietly(db)
		return err
	}
	index, err = m.reconcile(ctx, db, index)
	if err != nil {
		closeQuietly(db)
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
	m.changed()
	if old != nil {
		closeQuietly(old)
	}
	return nil
}

// rebuild replaces an unreadable index with one built from the mirror's
// files: the old index is moved aside, then open adopts every file that
// hashes to its name. It leaves the mirror unhealthy, as open does.
func (m *mirror) rebuild(ctx context.Context) error {
	aside, err := m.moveIndexAside()
	if err != nil {
		return err
	}
	m.log.Warn("index unreadable: moved aside, rebuilding from the mirror's files", "mirror", m.root, "old_index", aside)
	return m.open(ctx, false)
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
	if isResourceErr(err) {
		// The process is short of descriptors or memory, not the disk:
		// the request fails (ErrBusy), the mirror stays as it is.
		m.log.Warn("request failed for lack of a process resource", "mirror", m.root, "op", op, "err", err)
		return
	}
	m.mu.Lock()
	was := m.healthy
	m.healthy = false
	m.lastErr = fmt.Sprintf("%s: %v", op, err)
	m.lastErrAt = time.Now()
	m.mu.Unlock()
	m.changed()
	if was {
		m.log.Error("mirror unhealthy", "mirror", m.root, "op", op, "err", err)
	}
}

func (m *mirror) putRecord(d Digest, r record) error {
	m.mu.RLock()
	db := m.db
	m.mu.RUnlock()
	if db == nil {
		return ErrClosed
	}
	if err := m.indexBatch(db, func(tx *bolt.Tx) error {
		// A new copy supersedes an earlier delete of the same digest.
		if err := tx.Bucket(bucketTombstones).Delete(d[:]); err != nil {
			return err
		}
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
	m.changed(d)
	return nil
}

// vanished reports whether the mirror's index file is gone or replaced: the
// directory was removed (and perhaps made again) under the running daemon.
func (m *mirror) vanished() bool {
	ino, err := m.inode(filepath.Join(m.root, indexFile))
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

// inode is the inode number of path, read through the mirror's FS.
func (m *mirror) inode(path string) (uint64, error) {
	fi, err := m.fs.Stat(path)
	if err != nil {
		return 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino, nil
	}
	return 0, nil
}
