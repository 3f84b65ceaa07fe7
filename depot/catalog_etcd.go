package depot

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdOptions say where a shared catalog lives.
type EtcdOptions struct {
	Endpoints []string // client URLs, e.g. http://10.0.0.1:2379
	// Prefix is prepended to every key, so several racks can share one
	// cluster ("/depot/rack-7/"). Default "/depot/".
	Prefix string
	TLS    *tls.Config // nil: plain HTTP to etcd
	// Timeout bounds one catalog transaction, retries included. Default 5s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// etcdKV keeps the catalog's buckets in etcd, bucket b's key k at
// Prefix+b+"/"+k. Every read-write transaction also writes the head key
// (Prefix+"!head") and commits only if the head is unchanged since the
// revision the transaction read at, so transactions are serialisable
// (optimistic: a conflict re-runs the transaction). Reads of one
// transaction all see that revision.
type etcdKV struct {
	cli     *clientv3.Client
	prefix  string
	head    string
	timeout time.Duration
	log     *slog.Logger
	desc    string

	// writer lets one read-write transaction of this process run at a
	// time: every transaction writes the head key, so concurrent ones
	// would conflict, and a failed compare still costs etcd a Raft round
	// (with its fsync). Transactions of other processes still conflict
	// and re-run.
	writer chan struct{}

	notes  notifier // fired by the watch on the head key
	cancel context.CancelFunc
	done   chan struct{}
}

// OpenEtcdCatalog connects to the etcd cluster and opens (creating) the
// catalog under opts.Prefix. It fails with ErrCatalogUnavailable when no
// member answers within opts.Timeout.
func OpenEtcdCatalog(ctx context.Context, opts EtcdOptions) (*Catalog, error) {
	kv, err := openEtcdKV(ctx, opts)
	if err != nil {
		return nil, err
	}
	return newCatalog(ctx, kv)
}

func openEtcdKV(ctx context.Context, opts EtcdOptions) (*etcdKV, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcd catalog: no endpoints")
	}
	if opts.Prefix == "" {
		opts.Prefix = "/depot/"
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		TLS:         opts.TLS,
		DialTimeout: opts.Timeout,
		// A member cut off from the others is noticed within seconds.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		// A few retries reach another member when one is gone; more would
		// only delay the answer when the cluster has no leader (the
		// operator's 503 CATALOG_UNAVAILABLE).
		MaxUnaryRetries: 3,
		// The client's own zap log would bypass slog; errors reach the
		// caller as ErrCatalogUnavailable instead.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: etcd %s: %w", ErrCatalogUnavailable, strings.Join(opts.Endpoints, ","), err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	kv := &etcdKV{
		cli: cli, prefix: opts.Prefix, head: opts.Prefix + "!head", timeout: opts.Timeout, log: opts.Logger,
		desc:   fmt.Sprintf("etcd %s prefix %s", strings.Join(opts.Endpoints, ","), opts.Prefix),
		cancel: cancel, done: make(chan struct{}), writer: make(chan struct{}, 1),
	}
	// Fail at start-up rather than on the first request.
	if err := kv.view(ctx, func(tx kvTx) error { tx.Bucket(bucketMeta).Get(keyGeneration); return nil }); err != nil {
		cancel()
		cli.Close()
		return nil, err
	}
	go kv.watch(wctx)
	return kv, nil
}

func (e *etcdKV) shared() bool             { return true }
func (e *etcdKV) changes() <-chan struct{} { return e.notes.wait() }
func (e *etcdKV) where() string            { return e.desc }

func (e *etcdKV) close() error {
	e.cancel()
	<-e.done
	return e.cli.Close()
}

// Client is the etcd client, for leases and elections (ha.go).
func (e *etcdKV) client() *clientv3.Client { return e.cli }

// watch fires notes at every commit to the catalog, by any process. When
// the watch breaks it is re-made, and fires once in case it missed one.
func (e *etcdKV) watch(ctx context.Context) {
	defer close(e.done)
	for ctx.Err() == nil {
		wc := e.cli.Watch(clientv3.WithRequireLeader(ctx), e.head)
		for resp := range wc {
			if resp.Err() != nil {
				e.log.Warn("catalog watch", "err", resp.Err())
				break
			}
			if len(resp.Events) > 0 {
				e.notes.notify()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
			e.notes.notify()
		}
	}
}

// unavailable wraps an etcd error; a rule's own error passes through.
func (e *etcdKV) unavailable(err error) error {
	return fmt.Errorf("%w: %s: %w", ErrCatalogUnavailable, e.desc, err)
}

func (e *etcdKV) view(ctx context.Context, fn func(kvTx) error) error {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), e.timeout)
	defer cancel()
	tx := &etcdTx{kv: e, ctx: ctx}
	err := fn(tx)
	if tx.err != nil {
		return tx.err
	}
	return err
}

// maxTxnOps stays under etcd's default --max-txn-ops (128), head included.
const maxTxnOps = 120

// maxTxnBytes stays under etcd's default --max-request-bytes (1.5 MiB),
// with room for the request's framing.
const maxTxnBytes = 1<<20 + 384<<10

// ErrCatalogTooLarge means a change does not fit in one etcd request: a
// repository record with too many artifacts for a shared catalog.
var ErrCatalogTooLarge = errors.New("catalog change too large")

func (e *etcdKV) update(ctx context.Context, fn func(kvTx) error) error {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), e.timeout)
	defer cancel()
	select {
	case e.writer <- struct{}{}:
		defer func() { <-e.writer }()
	case <-ctx.Done():
		return e.unavailable(fmt.Errorf("waiting for this process's previous catalog transactions: %w", ctx.Err()))
	}
	for attempt := 0; ; attempt++ {
		tx := &etcdTx{kv: e, ctx: ctx, writes: make(map[string][]byte)}
		err := fn(tx)
		if tx.err != nil {
			return tx.err
		}
		if err != nil {
			return err
		}
		if len(tx.writes) == 0 {
			return nil
		}
		if len(tx.writes) >= maxTxnOps {
			return fmt.Errorf("catalog transaction of %d writes is over etcd's limit of %d", len(tx.writes), maxTxnOps)
		}
		if tx.rev == 0 {
			// Nothing read: pin the revision the writes are based on.
			tx.getRaw(e.head)
			if tx.err != nil {
				return tx.err
			}
		}
		size := 0
		for k, v := range tx.writes {
			size += len(k) + len(v)
		}
		if size > maxTxnBytes {
			return fmt.Errorf("%w: the change is %d bytes, over the %d etcd takes in one request", ErrCatalogTooLarge, size, maxTxnBytes)
		}
		ops := make([]clientv3.Op, 0, len(tx.writes)+1)
		for _, k := range slices.Sorted(maps.Keys(tx.writes)) {
			if v := tx.writes[k]; v != nil {
				ops = append(ops, clientv3.OpPut(k, string(v)))
			} else {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		ops = append(ops, clientv3.OpPut(e.head, fmt.Sprint(tx.rev)))
		resp, err := e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(e.head), "<", tx.rev+1)).
			Then(ops...).Commit()
		if err != nil {
			return e.unavailable(err)
		}
		if resp.Succeeded {
			for _, f := range tx.commits {
				f()
			}
			return nil
		}
		// Another transaction committed since our first read: run again on
		// what it wrote.
		d := time.Duration(rand.IntN(1+min(attempt, 20))) * time.Millisecond
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return e.unavailable(fmt.Errorf("transaction kept conflicting for %s: %w", e.timeout, ctx.Err()))
		}
	}
}

// etcdTx reads at one revision (rev, fixed by the first read) and buffers
// its writes (nil value: delete) until commit; reads see its own writes.
type etcdTx struct {
	kv      *etcdKV
	ctx     context.Context
	rev     int64
	writes  map[string][]byte // nil map: read-only
	commits []func()
	err     error // the first read error; the transaction fails with it
}

func (t *etcdTx) Bucket(name []byte) kvBucket {
	return etcdBucket{tx: t, prefix: t.kv.prefix + string(name) + "/"}
}

func (t *etcdTx) OnCommit(fn func()) { t.commits = append(t.commits, fn) }

func (t *etcdTx) opts(extra ...clientv3.OpOption) []clientv3.OpOption {
	if t.rev != 0 {
		extra = append(extra, clientv3.WithRev(t.rev))
	}
	return extra
}

func (t *etcdTx) fail(err error) {
	if t.err == nil {
		t.err = t.kv.unavailable(err)
	}
}

// getRaw reads one key at the transaction's revision.
func (t *etcdTx) getRaw(key string) []byte {
	if t.err != nil {
		return nil
	}
	resp, err := t.kv.cli.Get(t.ctx, key, t.opts()...)
	if err != nil {
		t.fail(err)
		return nil
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0].Value
}

// rangeRaw reads up to limit keys in [from, to) at the transaction's
// revision, merged with its own writes, in key order.
func (t *etcdTx) rangeRaw(from, to string, limit int) (keys []string, vals [][]byte) {
	if t.err != nil {
		return nil, nil
	}
	pending := 0
	for k := range t.writes {
		if k >= from && k < to {
			pending++
		}
	}
	opts := []clientv3.OpOption{clientv3.WithRange(to)}
	if limit > 0 {
		// Our own deletes can hide at most this many.
		opts = append(opts, clientv3.WithLimit(int64(limit+pending)))
	}
	resp, err := t.kv.cli.Get(t.ctx, from, t.opts(opts...)...)
	if err != nil {
		t.fail(err)
		return nil, nil
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	merged := make(map[string][]byte, len(resp.Kvs)+pending)
	for _, kv := range resp.Kvs {
		merged[string(kv.Key)] = kv.Value
	}
	last := to
	if limit > 0 && resp.More && len(resp.Kvs) > 0 {
		// Keys past what was fetched are unknown: ignore writes there too.
		last = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	for k, v := range t.writes {
		if k >= from && k < last {
			if v == nil {
				delete(merged, k)
			} else {
				merged[k] = v
			}
		}
	}
	keys = slices.Sorted(maps.Keys(merged))
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	for _, k := range keys {
		vals = append(vals, merged[k])
	}
	return keys, vals
}

type etcdBucket struct {
	tx     *etcdTx
	prefix string
}

func (b etcdBucket) end() string { return clientv3.GetPrefixRangeEnd(b.prefix) }

func (b etcdBucket) Get(k []byte) []byte {
	key := b.prefix + string(k)
	if v, ok := b.tx.writes[key]; ok {
		return v
	}
	return b.tx.getRaw(key)
}

func (b etcdBucket) Put(k, v []byte) error {
	if b.tx.writes == nil {
		return errors.New("catalog: write in a read-only transaction")
	}
	if v == nil {
		v = []byte{}
	}
	b.tx.writes[b.prefix+string(k)] = bytes.Clone(v)
	return nil
}

func (b etcdBucket) Delete(k []byte) error {
	if b.tx.writes == nil {
		return errors.New("catalog: write in a read-only transaction")
	}
	b.tx.writes[b.prefix+string(k)] = nil
	return nil
}

func (b etcdBucket) each(keys []string, vals [][]byte, fn func(k, v []byte) error) error {
	for i, k := range keys {
		if err := fn([]byte(strings.TrimPrefix(k, b.prefix)), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (b etcdBucket) ForEach(fn func(k, v []byte) error) error {
	keys, vals := b.tx.rangeRaw(b.prefix, b.end(), 0)
	return b.each(keys, vals, fn)
}

func (b etcdBucket) Scan(from []byte, limit int, fn func(k, v []byte) error) error {
	keys, vals := b.tx.rangeRaw(b.prefix+string(from), b.end(), limit)
	return b.each(keys, vals, fn)
}

func (b etcdBucket) First() (k, v []byte) {
	keys, vals := b.tx.rangeRaw(b.prefix, b.end(), 1)
	if len(keys) == 0 {
		return nil, nil
	}
	return []byte(strings.TrimPrefix(keys[0], b.prefix)), vals[0]
}

// Last reads the bucket's last key: etcd sorts a range descending on
// request, so one key is fetched, then merged with the transaction's own
// writes to the bucket.
func (b etcdBucket) Last() (k, v []byte) {
	t := b.tx
	if t.err != nil {
		return nil, nil
	}
	resp, err := t.kv.cli.Get(t.ctx, b.prefix, t.opts(clientv3.WithRange(b.end()),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))...)
	if err != nil {
		t.fail(err)
		return nil, nil
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	from := b.prefix
	if len(resp.Kvs) > 0 {
		from = string(resp.Kvs[0].Key)
	}
	// Everything from the stored last key on, with our writes applied.
	keys, vals := t.rangeRaw(from, b.end(), 0)
	if len(keys) > 0 {
		i := len(keys) - 1
		return []byte(strings.TrimPrefix(keys[i], b.prefix)), vals[i]
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	// Our writes deleted the stored last key: look again below it.
	keys, vals = t.rangeRaw(b.prefix, from, 0)
	if len(keys) == 0 {
		return nil, nil
	}
	i := len(keys) - 1
	return []byte(strings.TrimPrefix(keys[i], b.prefix)), vals[i]
}
