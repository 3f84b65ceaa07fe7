package depot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"depot/store"
)

// The catalog's rules (catalog.go, audit.go, saga.go, registry.go,
// tokens.go, trustroot.go) are written once, over named buckets of sorted
// keys read and written in serialisable transactions. Two backends keep
// the buckets: a bbolt file for one coordinator (boltKV, here) and an etcd
// cluster for several (etcdKV, catalog_etcd.go). The conformance suite
// (catalog_conformance_test.go) runs the same tests against both.

// ErrCatalogUnavailable means the catalog could not be read or written:
// the etcd cluster has no quorum or cannot be reached. Nothing was
// changed; the request can be retried once the cluster is back.
var ErrCatalogUnavailable = errors.New("catalog unavailable")

// catalogKV is where the catalog's buckets live.
type catalogKV interface {
	// view runs fn in a read-only transaction: every read sees one
	// snapshot.
	view(ctx context.Context, fn func(kvTx) error) error
	// update runs fn in a read-write transaction, committed only if no
	// other transaction committed since fn's first read (fn may run more
	// than once); fn's error, or a read error, rolls it back.
	update(ctx context.Context, fn func(kvTx) error) error
	// shared reports whether other processes write the same catalog.
	shared() bool
	// changes returns a channel closed at the next commit by any process
	// (shared backends only; nil otherwise).
	changes() <-chan struct{}
	// where names the catalog for messages (a path, or etcd endpoints and
	// prefix).
	where() string
	close() error
}

// kvTx is one transaction.
type kvTx interface {
	Bucket(name []byte) kvBucket
	// OnCommit runs fn after the transaction commits (not at all if it
	// rolls back or is retried).
	OnCommit(fn func())
}

// kvBucket is one bucket in a transaction. A value returned by Get, First,
// Last, ForEach or Scan is valid only during the transaction, and a read
// error (etcd unreachable) surfaces as the transaction's error: a read that
// failed returns nil here.
type kvBucket interface {
	Get(k []byte) []byte
	Put(k, v []byte) error
	Delete(k []byte) error
	// ForEach calls fn for every key in order; an error from fn stops it.
	ForEach(fn func(k, v []byte) error) error
	First() (k, v []byte)
	Last() (k, v []byte)
	// Scan calls fn for up to limit keys >= from, in order.
	Scan(from []byte, limit int, fn func(k, v []byte) error) error
}

// catalogBuckets are created when a catalog is opened.
var catalogBuckets = [][]byte{bucketRepos, bucketTrustRoots, bucketSagas, bucketSleds, bucketMeta,
	bucketAudit, bucketTokens, bucketTokenHashes, bucketIdentity}

// boltKV keeps the catalog in one bbolt file, locked by one process.
type boltKV struct {
	db   *bolt.DB
	path string
}

func openBoltKV(path string, lockTimeout time.Duration) (*boltKV, error) {
	if lockTimeout == 0 {
		lockTimeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open catalog %s: %w", path, store.ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range catalogBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init catalog %s: %w", path, err)
	}
	return &boltKV{db: db, path: path}, nil
}

func (b *boltKV) view(ctx context.Context, fn func(kvTx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b *boltKV) update(ctx context.Context, fn func(kvTx) error) error {
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b *boltKV) shared() bool             { return false }
func (b *boltKV) changes() <-chan struct{} { return nil }
func (b *boltKV) where() string            { return b.path }
func (b *boltKV) close() error             { return b.db.Close() }

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Bucket(name []byte) kvBucket { return boltBucket{t.tx.Bucket(name)} }
func (t boltTx) OnCommit(fn func())          { t.tx.OnCommit(fn) }

type boltBucket struct{ b *bolt.Bucket }

func (b boltBucket) Get(k []byte) []byte                      { return b.b.Get(k) }
func (b boltBucket) Put(k, v []byte) error                    { return b.b.Put(k, v) }
func (b boltBucket) Delete(k []byte) error                    { return b.b.Delete(k) }
func (b boltBucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b boltBucket) First() (k, v []byte)                     { return b.b.Cursor().First() }
func (b boltBucket) Last() (k, v []byte)                      { return b.b.Cursor().Last() }

func (b boltBucket) Scan(from []byte, limit int, fn func(k, v []byte) error) error {
	cur := b.b.Cursor()
	n := 0
	for k, v := cur.Seek(from); k != nil && n < limit; k, v = cur.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
		n++
	}
	return nil
}

// inRange reports whether k is in [from, to) (to nil: no upper bound).
func inRange(k, from, to []byte) bool {
	return bytes.Compare(k, from) >= 0 && (to == nil || bytes.Compare(k, to) < 0)
}
