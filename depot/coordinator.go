package depot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"depot/store"
	"depot/tuf"
)

// Spooler makes temp files for uploads on a mirror and fills them (a
// write error marks that mirror unhealthy). *store.Store implements it.
type Spooler interface {
	CreateSpool(prefix string) (*os.File, error)
	SpoolFrom(ctx context.Context, f *os.File, body io.Reader) (int64, store.Digest, error)
}

var _ Spooler = (*store.Store)(nil)

// CoordinatorOptions configure NewCoordinator.
type CoordinatorOptions struct {
	Catalog *Catalog
	// Local is the coordinator's own sled: uploads are staged into it and
	// it is always a member of the rack.
	Local  *Sled
	Spool  Spooler
	Logger *slog.Logger
	// TUF is how uploads are opened and verified (limits, expiry).
	TUF tuf.Options
	// Presence is this coordinator's place among the catalog's
	// coordinators (Catalog.Join); nil joins with the defaults.
	Presence Presence
	// SelfSledID is the local sled's id in the registry, where other
	// coordinators find it ("" or LocalSledID: it is not registered).
	SelfSledID string
	// OnSagaStep, if set, is called as an upload saga reaches each step
	// (StepSpool, StepVerify, StepStage once everything is staged,
	// StepRecorded), before the step's work is made durable further. The
	// crash tests use it to kill the daemon at an exact step.
	OnSagaStep func(step string)
}

// Coordinator is the coordinator role: the catalog, the upload saga and
// (with replication) the drive that puts every artifact on every sled.
// Safe for concurrent use.
type Coordinator struct {
	cat    *Catalog
	local  *Sled
	spool  Spooler
	log    *slog.Logger
	tuf    tuf.Options
	onStep func(string)

	presence Presence
	selfSled string

	// recoverMu runs one recovery pass at a time: passes run at start-up,
	// on Follow's ticker and in every activation, and two at once would
	// both finish a saga this coordinator had just adopted.
	recoverMu sync.Mutex

	mu       sync.Mutex
	running  map[string]bool // sagas this process is executing
	recovery RecoveryStatus

	// changes is closed and replaced whenever the catalog or replication
	// state changes, waking long-polls.
	changeMu sync.Mutex
	changes  chan struct{}

	// onChange is called after the wanted set changes (replication kick).
	onChange func()
}

// NewCoordinator recovers unfinished upload sagas, makes the local sled's
// config match the catalog, and starts the local sled's reconciler (which
// the caller held, so that nothing staged is deleted before this).
func NewCoordinator(ctx context.Context, opts CoordinatorOptions) (*Coordinator, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SelfSledID == "" {
		opts.SelfSledID = LocalSledID
	}
	if opts.Presence == nil {
		p, err := opts.Catalog.Join(ctx, PresenceInfo{SledID: opts.SelfSledID}, 0, opts.Logger)
		if err != nil {
			return nil, fmt.Errorf("join catalog: %w", err)
		}
		opts.Presence = p
	}
	c := &Coordinator{
		cat: opts.Catalog, local: opts.Local, spool: opts.Spool, log: opts.Logger, tuf: opts.TUF, onStep: opts.OnSagaStep,
		presence: opts.Presence, selfSled: opts.SelfSledID,
		running: make(map[string]bool),
		changes: make(chan struct{}),
	}
	if err := c.syncLocalConfig(ctx); err != nil {
		return nil, err
	}
	if _, err := c.Recover(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Coordinator) reached(step string) {
	if c.onStep != nil {
		c.onStep(step)
	}
}

// Catalog returns the coordinator's catalog.
func (c *Coordinator) Catalog() *Catalog { return c.cat }

// Presence returns the coordinator's place among the catalog's
// coordinators.
func (c *Coordinator) Presence() Presence { return c.presence }

// Follow keeps this coordinator in step with the others of a shared
// catalog until ctx ends: at every commit by any of them it wakes
// long-polls, and when the wanted set, the registry or an activation
// request changed it syncs its own sled and wakes replication; every
// recoverEvery it adopts the sagas of coordinators whose lease is gone.
// It returns at once for a catalog only this process writes.
func (c *Coordinator) Follow(ctx context.Context, recoverEvery time.Duration) {
	if !c.cat.Shared() {
		return
	}
	if recoverEvery <= 0 {
		recoverEvery = 2 * time.Second
	}
	t := time.NewTicker(recoverEvery)
	defer t.Stop()
	last, _ := c.cat.Stamp(ctx)
	ch := c.cat.Changes()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.Recover(ctx); err != nil {
				c.log.Warn("saga recovery", "err", err)
			}
			continue
		case <-ch:
		}
		ch = c.cat.Changes()
		st, err := c.cat.Stamp(ctx)
		if err != nil {
			c.log.Warn("read catalog after a change", "err", err)
			c.notify()
			continue
		}
		if st != last {
			last = st
			c.wantedChanged(ctx)
			continue
		}
		c.notify()
	}
}

// syncLocalConfig sets the local sled's config to the catalog's wanted set.
// Generation 0 (nothing ever uploaded) leaves the sled unmanaged, so a
// fresh single-sled depot takes plain PUTs.
func (c *Coordinator) syncLocalConfig(ctx context.Context) error {
	w, err := c.cat.Wanted(ctx)
	if err != nil {
		return fmt.Errorf("read catalog: %w", err)
	}
	if w.Generation == 0 {
		return nil
	}
	if err := c.local.SetConfig(ctx, c.cat.configOf(w)); err != nil {
		if errors.Is(err, ErrConfigGeneration) || errors.Is(err, ErrCatalogMismatch) {
			// The local sled is ahead of this catalog, or serves another
			// one: another coordinator drives it. Keep going; replication
			// will say the same.
			c.log.Error("local sled's config is ahead of the catalog or from another catalog",
				"catalog_id", c.cat.ID(), "catalog_generation", w.Generation, "err", err)
			return nil
		}
		return fmt.Errorf("set local config: %w", err)
	}
	return nil
}

// Changes returns a channel closed at the next change of the catalog or of
// replication state; long-polls wait on it.
func (c *Coordinator) Changes() <-chan struct{} {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	return c.changes
}

// notify wakes every long-poll waiting on Changes.
func (c *Coordinator) notify() {
	c.changeMu.Lock()
	close(c.changes)
	c.changes = make(chan struct{})
	c.changeMu.Unlock()
}

// SetOnChange sets the function called after the wanted set changes.
func (c *Coordinator) SetOnChange(fn func()) {
	c.mu.Lock()
	c.onChange = fn
	c.mu.Unlock()
}

// wantedChanged pushes the new wanted set to the local sled, then wakes
// replication and long-polls.
func (c *Coordinator) wantedChanged(ctx context.Context) {
	if err := c.syncLocalConfig(ctx); err != nil {
		c.log.Error("set local config", "err", err)
	}
	c.mu.Lock()
	fn := c.onChange
	c.mu.Unlock()
	if fn != nil {
		fn()
	}
	c.notify()
}

// DeleteRepo prunes a repository: artifacts no other repository
// references leave the wanted set (the generation rises) and the sleds'
// reconcilers delete them. e, if not nil, is the request's audit entry.
func (c *Coordinator) DeleteRepo(ctx context.Context, systemVersion string, e *AuditEntry) (Repo, error) {
	r, _, err := c.cat.DeleteRepo(ctx, systemVersion, e)
	if err != nil {
		return Repo{}, err
	}
	c.log.Info("repository deleted", "system_version", systemVersion)
	c.wantedChanged(ctx)
	return r, nil
}

// AddTrustRoot checks that doc is a self-signed TUF root and records it.
// e, if not nil, is the request's audit entry.
func (c *Coordinator) AddTrustRoot(ctx context.Context, doc []byte, source string, e *AuditEntry) (TrustRoot, bool, error) {
	if _, err := tuf.CheckRootDocument(doc); err != nil {
		return TrustRoot{}, false, fmt.Errorf("%w: %w", ErrTrustRootInvalid, err)
	}
	r, created, err := c.cat.AddTrustRoot(ctx, doc, source, e)
	if err == nil && created {
		c.log.Info("trust root added", "id", r.ID, "source", source)
		c.notify()
	}
	return r, created, err
}
