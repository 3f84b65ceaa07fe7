package depot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"depot/depot/randid"
)

// Presence is a coordinator's place among the coordinators of one catalog:
// its id, which others are alive, and who leads replication. Exactly one
// coordinator leads at a time. A bbolt catalog has one coordinator, which
// always leads; on etcd each coordinator holds a lease (its session), its
// presence key lives on that lease, and the leader is elected on it
// (client/v3 concurrency.Election).
type Presence interface {
	// ID is this coordinator's id, new for every process.
	ID() string
	// Alive reports whether the coordinator with this id holds its lease.
	Alive(ctx context.Context, id string) (bool, error)
	// Lead blocks until this coordinator leads (or ctx ends), then returns
	// a context that ends when it stops leading.
	Lead(ctx context.Context) (context.Context, error)
	// Leader is the leading coordinator's id ("" when none or unknown).
	Leader(ctx context.Context) (string, error)
	Close() error
}

// PresenceInfo is what a coordinator's presence key says about it.
type PresenceInfo struct {
	ID      string    `json:"id"`
	SledID  string    `json:"sled_id"` // its own sled in the registry
	Started time.Time `json:"started"`
	Host    string    `json:"host,omitempty"`
}

// Join makes this process's presence in the catalog: for etcd a lease of
// ttl (default 10s) kept alive until Close, for bbolt the sole coordinator.
// Saga ownership (Saga.Owner) uses the presence's id from then on.
func (c *Catalog) Join(ctx context.Context, info PresenceInfo, ttl time.Duration, log *slog.Logger) (Presence, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	info.ID = randid.New()
	info.Started = time.Now().UTC()
	var p Presence = soloPresence{id: info.ID}
	if e, ok := c.kv.(*etcdKV); ok {
		ep, err := joinEtcd(ctx, e, info, ttl, log)
		if err != nil {
			return nil, err
		}
		p = ep
	}
	c.ownerMu.Lock()
	c.owner = info.ID
	c.ownerMu.Unlock()
	return p, nil
}

// soloPresence is the one coordinator of a bbolt catalog (its file lock
// keeps any other out).
type soloPresence struct{ id string }

func (s soloPresence) ID() string { return s.id }
func (s soloPresence) Alive(_ context.Context, id string) (bool, error) {
	return id == s.id, nil
}
func (s soloPresence) Lead(ctx context.Context) (context.Context, error) { return ctx, ctx.Err() }
func (s soloPresence) Leader(context.Context) (string, error)            { return s.id, nil }
func (s soloPresence) Close() error                                      { return nil }

// etcdPresence holds a session (a lease kept alive by the client) with
// the presence key on it. A session that expires (etcd unreachable for
// longer than the TTL) is replaced by a new one under the same id.
type etcdPresence struct {
	kv   *etcdKV
	info PresenceInfo
	ttl  int
	log  *slog.Logger

	mu      sync.Mutex
	session *concurrency.Session // guarded by mu; renewed by keep
	closed  bool

	stop context.CancelFunc
	done chan struct{}
}

func (e *etcdKV) presenceKey(id string) string { return e.prefix + "!coordinators/" + id }
func (e *etcdKV) electionKey() string          { return e.prefix + "!election" }

func joinEtcd(ctx context.Context, kv *etcdKV, info PresenceInfo, ttl time.Duration, log *slog.Logger) (*etcdPresence, error) {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	p := &etcdPresence{kv: kv, info: info, ttl: max(1, int(ttl/time.Second)), log: log, done: make(chan struct{})}
	if err := p.renew(ctx); err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	go p.keep(kctx)
	return p, nil
}

// renew makes a new session and puts the presence key on its lease.
func (p *etcdPresence) renew(ctx context.Context) error {
	s, err := concurrency.NewSession(p.kv.cli, concurrency.WithTTL(p.ttl))
	if err != nil {
		return p.kv.unavailable(fmt.Errorf("new session: %w", err))
	}
	v, _ := json.Marshal(p.info)
	pctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), p.kv.timeout)
	defer cancel()
	if _, err := p.kv.cli.Put(pctx, p.kv.presenceKey(p.info.ID), string(v), clientv3.WithLease(s.Lease())); err != nil {
		s.Close()
		return p.kv.unavailable(fmt.Errorf("put presence: %w", err))
	}
	p.mu.Lock()
	p.session = s
	p.mu.Unlock()
	return nil
}

// keep replaces the session whenever it ends.
func (p *etcdPresence) keep(ctx context.Context) {
	defer close(p.done)
	for {
		p.mu.Lock()
		s := p.session
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.Done():
		}
		p.log.Warn("coordinator lease lost; joining again", "coordinator", p.info.ID)
		for ctx.Err() == nil {
			if err := p.renew(ctx); err == nil {
				p.log.Info("coordinator lease renewed", "coordinator", p.info.ID)
				break
			} else {
				p.log.Warn("renew coordinator lease", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (p *etcdPresence) ID() string { return p.info.ID }

func (p *etcdPresence) current() *concurrency.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.session
}

func (p *etcdPresence) Alive(ctx context.Context, id string) (bool, error) {
	if id == p.info.ID {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), p.kv.timeout)
	defer cancel()
	resp, err := p.kv.cli.Get(ctx, p.kv.presenceKey(id), clientv3.WithCountOnly())
	if err != nil {
		return false, p.kv.unavailable(err)
	}
	return resp.Count > 0, nil
}

func (p *etcdPresence) Lead(ctx context.Context) (context.Context, error) {
	for {
		s := p.current()
		el := concurrency.NewElection(s, p.kv.electionKey())
		cctx, cancel := context.WithCancel(ctx)
		// A campaign on a session that ends would wait for ever.
		go func() {
			select {
			case <-s.Done():
				cancel()
			case <-cctx.Done():
			}
		}()
		err := el.Campaign(clientv3.WithRequireLeader(cctx), p.info.ID)
		if err == nil {
			lctx, lcancel := context.WithCancel(ctx)
			go func() {
				defer cancel()
				select {
				case <-s.Done():
					p.log.Warn("replication leadership lost with the lease", "coordinator", p.info.ID)
				case <-lctx.Done():
				}
				lcancel()
				// Step down at once so the next leader need not wait for
				// the lease to expire.
				rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
				_ = el.Resign(rctx)
				rcancel()
			}()
			return lctx, nil
		}
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The session ended or etcd failed: try again on the next session.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (p *etcdPresence) Leader(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), p.kv.timeout)
	defer cancel()
	el := concurrency.NewElection(p.current(), p.kv.electionKey())
	resp, err := el.Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return "", nil
	}
	if err != nil {
		return "", p.kv.unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// Close gives up the lease (leadership and presence end at once).
func (p *etcdPresence) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.stop()
	<-p.done
	return p.current().Close()
}
