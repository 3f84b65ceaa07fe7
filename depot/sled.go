package depot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"depot/store"
	"depot/store/trigger"
)

// SledOptions configure NewSled.
type SledOptions struct {
	Store Store
	// Peer fetches for copy-from-depot; nil refuses copies.
	Peer   Peer
	Logger *slog.Logger
	// MaxConcurrentCopies bounds copy jobs running at once; 0 = 4.
	MaxConcurrentCopies int
	// MaxQueuedCopies bounds accepted copy jobs waiting for a running
	// slot; one more is refused with ErrTooManyCopies. 0 = 64, < 0 = none.
	MaxQueuedCopies int
	// CopyStallTimeout fails a copy that receives no bytes for this long;
	// 0 = 60s.
	CopyStallTimeout time.Duration
	// CopyHistory is how many finished copy jobs are kept for GET /copies;
	// 0 = 1024.
	CopyHistory int
	// WriteSlots, if set, is shared with the other writers of the store:
	// each copy job holds one slot while it runs, and a copy that finds
	// none free is refused with ErrServerBusy.
	WriteSlots *WriteSlots
	// HoldReconciler keeps the reconciler from running until
	// StartReconciler: a coordinator first restores the local config from
	// its catalog, so its own staged copies are not deleted at start-up.
	HoldReconciler bool
}

// Sled is the sled service: the store plus the generation-numbered artifact
// config a coordinator drives it with, the delete reconciler, and
// copy-from-depot jobs. Safe for concurrent use.
type Sled struct {
	st   Store
	peer Peer
	log  *slog.Logger

	// setMu serialises SetConfig (ledger writes) and guards seq. Lock
	// order: setMu, mu.
	setMu sync.Mutex
	seq   uint64 // the ledger's sequence number (see ledgerFile)
	// mu guards cfg, wanted and managed. Deletes hold it for reading
	// across their check and unlink, so a new config waits for them.
	mu        sync.RWMutex
	cfg       Config
	wanted    map[store.Digest]bool
	managed   bool
	protected map[store.Digest]int // see Protect
	staging   map[store.Digest]*stagingEntry
	// stagingVer moves whenever what staging hides changes (listing key).
	stagingVer uint64

	listing listing // GET /artifacts, encoded (ListJSON)

	rec    reconciler
	copies copyTracker

	ctx    context.Context // ends at Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// NewSled loads the config ledger (the highest valid generation on any
// mirror wins; other copies are rewritten) and, unless
// SledOptions.HoldReconciler, starts the delete reconciler with a first
// pass.
func NewSled(ctx context.Context, opts SledOptions) (*Sled, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConcurrentCopies <= 0 {
		opts.MaxConcurrentCopies = 4
	}
	switch {
	case opts.MaxQueuedCopies == 0:
		opts.MaxQueuedCopies = 64
	case opts.MaxQueuedCopies < 0:
		opts.MaxQueuedCopies = 0
	}
	if opts.CopyStallTimeout <= 0 {
		opts.CopyStallTimeout = time.Minute
	}
	if opts.CopyHistory <= 0 {
		opts.CopyHistory = 1024
	}
	s := &Sled{st: opts.Store, peer: opts.Peer, log: opts.Logger}
	s.copies = copyTracker{
		max:       opts.MaxConcurrentCopies,
		maxQueued: opts.MaxQueuedCopies,
		stall:     opts.CopyStallTimeout,
		history:   opts.CopyHistory,
		slots:     make(chan struct{}, opts.MaxConcurrentCopies),
		active:    make(map[store.Digest]*copyJob),
		writes:    opts.WriteSlots,
	}
	cfg, seq, ok, err := loadLedger(ctx, s.st, healthyMirrors(s.st), s.log)
	if err != nil {
		return nil, err
	}
	s.seq = seq
	if ok {
		s.setLocked(cfg)
		s.log.Info("artifact config loaded", "catalog_id", cfg.CatalogID, "generation", cfg.Generation, "artifacts", len(cfg.Artifacts))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.rec.kick = trigger.New()
	if !opts.HoldReconciler {
		s.StartReconciler()
	}
	return s, nil
}

// StartReconciler starts the delete reconciler and its first pass. Call
// it once, and only with SledOptions.HoldReconciler.
func (s *Sled) StartReconciler() {
	s.wg.Add(1)
	go s.reconcileLoop()
	s.rec.trigger()
}

// Close cancels copy jobs (their temp files are removed by the store) and
// stops the reconciler, then waits for both. The store stays open.
func (s *Sled) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func healthyMirrors(st interface{ Mirrors() []store.MirrorStatus }) int {
	n := 0
	for _, m := range st.Mirrors() {
		if m.Healthy {
			n++
		}
	}
	return n
}

// setLocked installs cfg; the caller holds mu (or is the constructor).
func (s *Sled) setLocked(cfg Config) {
	cfg = cfg.normalize()
	s.cfg = cfg
	s.wanted = make(map[store.Digest]bool, len(cfg.Artifacts))
	for _, d := range cfg.Artifacts {
		s.wanted[d] = true
	}
	s.managed = true
}

// Config returns the current config, or ErrNoConfig while unmanaged.
func (s *Sled) Config() (Config, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.managed {
		return Config{}, ErrNoConfig
	}
	c := s.cfg
	c.Artifacts = append([]store.Digest(nil), c.Artifacts...)
	return c, nil
}

// Generation returns the config's generation, or nil while unmanaged.
func (s *Sled) Generation(context.Context) (*uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.managed {
		return nil, nil
	}
	g := s.cfg.Generation
	return &g, nil
}

// SetConfig installs cfg if CheckConfig allows it: from the sled's
// catalog (an unmanaged sled takes any), at a higher generation (an equal
// one with the same set changes nothing). The ledger is written to every
// healthy mirror before the new config takes effect (a mirror that fails
// the write is marked unhealthy; the write fails only when no mirror took
// it); then the reconciler is triggered. Refusals are ErrCatalogMismatch
// and ErrConfigGeneration, and change nothing.
func (s *Sled) SetConfig(ctx context.Context, cfg Config) error {
	cfg = cfg.normalize()
	s.setMu.Lock()
	defer s.setMu.Unlock()
	s.mu.RLock()
	cur, managed := s.cfg, s.managed
	s.mu.RUnlock()
	var curp *Config
	if managed {
		curp = &cur
	}
	change, err := CheckConfig(curp, cfg)
	if err != nil {
		if errors.Is(err, ErrCatalogMismatch) {
			s.log.Warn("artifact config from another catalog refused", "catalog_id", cur.CatalogID,
				"offered_catalog_id", cfg.CatalogID, "generation", cur.Generation, "offered_generation", cfg.Generation)
		}
		return err
	}
	if !change {
		return nil
	}
	return s.installLocked(ctx, cfg)
}

// installLocked writes cfg to the ledger and puts it in force; the
// caller holds setMu.
func (s *Sled) installLocked(ctx context.Context, cfg Config) error {
	data, err := encodeLedger(cfg, s.seq+1)
	if err != nil {
		return err
	}
	if _, err := s.st.WriteMeta(ctx, ledgerName, data); err != nil {
		return fmt.Errorf("write config ledger: %w", err)
	}
	s.seq++
	s.mu.Lock()
	s.setLocked(cfg)
	s.mu.Unlock()
	s.log.Info("artifact config changed", "catalog_id", cfg.CatalogID, "generation", cfg.Generation, "artifacts", len(cfg.Artifacts))
	s.rec.trigger()
	return nil
}

// admit checks a write of d at generation gen against the config: an
// unmanaged sled takes anything without a generation; a managed one wants
// the current generation and an artifact it lists.
func (s *Sled) admit(d store.Digest, gen *uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if !s.managed {
		if gen != nil {
			return fmt.Errorf("%w: the sled has no config, so generation %d cannot match; put a config first or leave generation out", ErrGeneration, *gen)
		}
		return nil
	}
	if gen == nil {
		return fmt.Errorf("%w: the sled is managed at generation %d; pass ?generation=%d", ErrGeneration, s.cfg.Generation, s.cfg.Generation)
	}
	if *gen != s.cfg.Generation {
		return fmt.Errorf("%w: request has generation %d, the sled's config is at %d", ErrGeneration, *gen, s.cfg.Generation)
	}
	if !s.wanted[d] {
		return fmt.Errorf("%w: %s is not among the %d artifacts of generation %d", ErrNotInConfig, d, len(s.cfg.Artifacts), s.cfg.Generation)
	}
	return nil
}

// Put stores body under d after admit's checks (see DESIGN.md, sled API).
func (s *Sled) Put(ctx context.Context, d store.Digest, gen *uint64, body io.Reader, size int64) (store.PutResult, error) {
	if err := s.admit(d, gen); err != nil {
		return store.PutResult{}, err
	}
	res, err := s.st.Put(ctx, d, body, size)
	s.afterWrite(d)
	return res, err
}

// afterWrite catches a write admitted under a config that has since dropped
// its artifact: the reconciler pass may have run before the write landed.
// It also claims d from any upload that staged it.
func (s *Sled) afterWrite(d store.Digest) {
	s.claim(d)
	s.mu.RLock()
	stray := s.managed && !s.wanted[d]
	s.mu.RUnlock()
	if stray {
		s.rec.trigger()
	}
}

// Open returns the artifact for reading; see store.Store.Open. An artifact
// only staged by an upload not yet recorded is store.ErrNotFound.
func (s *Sled) Open(ctx context.Context, d store.Digest) (*store.Blob, error) {
	if s.hidden(d) {
		return nil, fmt.Errorf("open %s: %w", d, store.ErrNotFound)
	}
	return s.st.Open(ctx, d)
}

// openStaged opens d even while only staged (an upload reads its own parts).
func (s *Sled) openStaged(ctx context.Context, d store.Digest) (*store.Blob, error) {
	return s.st.Open(ctx, d)
}

// Stat returns what the store knows of d; like Open, a staged-only d is
// store.ErrNotFound.
func (s *Sled) Stat(ctx context.Context, d store.Digest) (store.Info, error) {
	if s.hidden(d) {
		return store.Info{Digest: d}, fmt.Errorf("stat %s: %w", d, store.ErrNotFound)
	}
	return s.st.Stat(ctx, d)
}

// Delete removes d from every mirror unless the config lists it
// (ErrArtifactInConfig). Absent is not an error.
func (s *Sled) Delete(ctx context.Context, d store.Digest) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.managed && s.wanted[d] {
		return fmt.Errorf("%w: %s is wanted by generation %d; put a config without it first", ErrArtifactInConfig, d, s.cfg.Generation)
	}
	return s.st.Delete(ctx, d)
}

// List returns the stored artifacts; with a config, only configured ones.
func (s *Sled) List(ctx context.Context) ([]store.Info, error) {
	all, err := s.st.List(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.managed && len(s.staging) == 0 {
		return all, nil
	}
	out := all[:0]
	for _, info := range all {
		if s.managed && !s.wanted[info.Digest] || s.hiddenLocked(info.Digest) {
			continue
		}
		out = append(out, info)
	}
	return out, nil
}

// Mirrors returns the store's mirror status.
func (s *Sled) Mirrors() []store.MirrorStatus { return s.st.Mirrors() }

// StartScrub asks the store for a verify pass now.
func (s *Sled) StartScrub() { s.st.StartScrub(true) }

// SledStatus is the sled service's part of GET /status.
type SledStatus struct {
	// CatalogID is the catalog the config comes from ("" when it names
	// none, or while unmanaged).
	CatalogID  string            `json:"catalog_id,omitempty"`
	Generation *uint64           `json:"generation"`
	Artifacts  *int              `json:"configured_artifacts,omitempty"`
	Copies     CopyCounts        `json:"copies"`
	Reconciler ReconcileStatus   `json:"reconciler"`
	Scrub      store.ScrubStatus `json:"scrub"`
}

// Status reports config, copies, reconciler and scrub.
func (s *Sled) Status() SledStatus {
	st := SledStatus{Copies: s.copies.counts(), Reconciler: s.rec.status(), Scrub: s.st.ScrubStatus()}
	s.mu.RLock()
	if s.managed {
		g, n := s.cfg.Generation, len(s.cfg.Artifacts)
		st.Generation, st.Artifacts, st.CatalogID = &g, &n, s.cfg.CatalogID
	}
	s.mu.RUnlock()
	return st
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
