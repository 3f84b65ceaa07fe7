package depot

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"depot/store"
	"depot/store/trigger"
)

// ArtifactOpener is what replication needs from the coordinator's own
// store: its copies, read for PUTs to other sleds. *store.Store
// implements it.
type ArtifactOpener interface {
	Open(ctx context.Context, d store.Digest) (*store.Blob, error)
}

var _ ArtifactOpener = (*store.Store)(nil)

// ReplicationOptions configure the replication loop.
type ReplicationOptions struct {
	// Period between activations; 0 = 60s.
	Period time.Duration
	// MinReplication is the quorum: sleds that must hold every artifact
	// before a repository is durable; 0 = 1.
	MinReplication int
	// Limits cap each activation's plan; zero fields take
	// DefaultMaxRequests and DefaultMaxPuts (MaxCopiesPerSled stays
	// unlimited: CopiesPerSled bounds copies in flight instead).
	Limits PlanLimits
	// Concurrency bounds the PUTs and copies in flight; 0 = 16. Collect
	// is not bounded by it: it calls every member sled at once.
	Concurrency int
	// CopiesPerSled bounds copy jobs in flight on one sled; 0 = 4 (the
	// sleds' default --max-concurrent-copies).
	CopiesPerSled int
	// CallTimeout bounds each collect call (config, list, info); 0 = 10s.
	CallTimeout time.Duration
	// CopyTimeout bounds the wait for one copy job; 0 = 30 min.
	CopyTimeout time.Duration
	// RingSize is the number of recent requests kept; 0 = 4096.
	RingSize int
	// ClientFor returns the client of a registered sled.
	ClientFor func(SledRecord) SledClient
	// Local is the coordinator's own sled, always a member.
	Local SledClient
	// LocalStore is where PUTs read the coordinator's copies from.
	LocalStore ArtifactOpener
	Logger     *slog.Logger
	// Seed seeds the planner's random choices; 0 = random.
	Seed uint64
	// OnActivation, if set, is called after every activation (metrics).
	OnActivation func(Activation)
}

// Default per-activation caps.
const (
	DefaultMaxRequests = 4096
	DefaultMaxPuts     = 256
)

func (o *ReplicationOptions) defaults() {
	if o.Limits.MaxRequests <= 0 {
		o.Limits.MaxRequests = DefaultMaxRequests
	}
	if o.Limits.MaxPuts <= 0 {
		o.Limits.MaxPuts = DefaultMaxPuts
	}
	if o.Period <= 0 {
		o.Period = time.Minute
	}
	if o.MinReplication <= 0 {
		o.MinReplication = 1
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.CopiesPerSled <= 0 {
		o.CopiesPerSled = 4
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.CopyTimeout <= 0 {
		o.CopyTimeout = 30 * time.Minute
	}
	if o.RingSize <= 0 {
		o.RingSize = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
}

// Replicator is the replication loop: collect → plan → execute, on a
// period, after every change of the wanted set, and on demand. Safe for
// concurrent use, except RunOnce (see there).
type Replicator struct {
	opts  ReplicationOptions
	cat   *Catalog
	coord *Coordinator
	log   *slog.Logger
	rnd   *rand.Rand // used by RunOnce only, so one activation at a time

	kick    trigger.Trigger
	leading atomic.Bool

	mu          sync.Mutex // guards everything below
	running     bool
	activations int64
	last        *Activation
	lifetime    Counters
	ring        []RequestRecord
	ringNext    int
	sleds       map[string]*SledState
	// view is, per in-service sled of the last collect, the wanted
	// artifacts it is known to hold; nil when its holdings are unknown.
	view      map[string]map[store.Digest]bool
	inService []string // sled ids of the last activation
}

// NewReplicator builds the loop; Run starts it.
func NewReplicator(coord *Coordinator, opts ReplicationOptions) *Replicator {
	opts.defaults()
	r := &Replicator{
		opts: opts, cat: coord.cat, coord: coord, log: opts.Logger,
		rnd:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		kick:     trigger.New(),
		lifetime: newCounters(),
		sleds:    make(map[string]*SledState),
	}
	coord.SetOnChange(r.kick.Fire)
	return r
}

// Activate asks for an activation now; requests while one is queued fold
// into it. On a coordinator that does not lead, the request goes to the
// leader through the catalog (see RequestActivation). Changes of the
// wanted set wake the loop directly (a follower then refreshes what it
// knows of the sleds).
func (r *Replicator) Activate() {
	if r.leading.Load() || !r.cat.Shared() {
		r.kick.Fire()
		return
	}
	go func() {
		// Bounded by the catalog's own timeout.
		if err := r.cat.RequestActivation(context.Background(), nil); err != nil {
			r.log.Warn("ask the leader for an activation", "err", err)
		}
	}()
}

// Leading reports whether this coordinator runs replication now.
func (r *Replicator) Leading() bool { return r.leading.Load() }

// Run runs activations until ctx ends, while this coordinator leads: on
// a shared catalog it campaigns first and, when it loses the lead, stops
// and campaigns again.
func (r *Replicator) Run(ctx context.Context) {
	p := r.coord.presence
	for ctx.Err() == nil {
		won := make(chan context.Context, 1)
		go func() {
			// Lead retries etcd failures itself; it fails only as ctx ends.
			if lctx, err := p.Lead(ctx); err == nil {
				won <- lctx
			}
		}()
		lctx := r.follow(ctx, won)
		if lctx == nil {
			return
		}
		if r.cat.Shared() {
			r.log.Info("leading replication", "coordinator", p.ID())
		}
		r.leading.Store(true)
		r.coord.notify()
		r.runLeading(lctx)
		r.leading.Store(false)
		r.coord.notify()
		if ctx.Err() == nil {
			r.log.Warn("no longer leading replication", "coordinator", p.ID())
		}
	}
}

// follow waits for the lead; meanwhile, on a shared catalog, it observes
// the sleds (collect without writes) on the period and whenever the wanted
// set changes, so this coordinator's progress and status stay current.
func (r *Replicator) follow(ctx context.Context, won <-chan context.Context) context.Context {
	if !r.cat.Shared() {
		select {
		case l := <-won:
			return l
		case <-ctx.Done():
			return nil
		}
	}
	for {
		// Until the sleds hold the wanted set the leader is copying: look
		// again soon, as the leader's loop does.
		next := r.opts.Period
		if !r.observeOnce(ctx) {
			next = min(next, time.Second)
		}
		t := time.NewTimer(next)
		select {
		case l := <-won:
			t.Stop()
			return l
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-r.kick.C():
			t.Stop()
		}
	}
}

// observeOnce refreshes what this coordinator knows of the sleds without
// writing to any, and reports whether every sled answered and holds every
// wanted artifact.
func (r *Replicator) observeOnce(ctx context.Context) (converged bool) {
	w, err := r.cat.Wanted(ctx)
	if err != nil {
		r.unknownAll()
		return false
	}
	members, err := r.members(ctx)
	if err != nil {
		r.unknownAll()
		return false
	}
	ids := memberIDs(members)
	act := Activation{Counters: newCounters()}
	invs, _ := r.collect(ctx, r.cat.configOf(w), members, &act, true)
	r.setView(w, ids, invs)
	r.coord.notify()
	for _, inv := range invs {
		if !inv.OK {
			return false
		}
		for d := range w.Artifacts {
			if inv.Have[d] < max(1, inv.Mirrors) {
				return false
			}
		}
	}
	return true
}

func (r *Replicator) runLeading(ctx context.Context) {
	t := time.NewTicker(r.opts.Period)
	defer t.Stop()
	r.Activate()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick.C():
		}
		act := r.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if !act.Converged && act.Error == "" {
			// Not there yet: go again soon rather than in a period, at once
			// if this activation made progress.
			delay := min(r.opts.Period, 2*time.Second)
			if act.Counters[OpPut].OK+act.Counters[OpCopy].OK > 0 {
				delay = 0
			}
			go func() {
				select {
				case <-time.After(delay):
					r.Activate()
				case <-ctx.Done():
				}
			}()
		}
	}
}

// memberIDs lists the members' sled ids, in order.
func memberIDs(members []member) []string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.rec.ID
	}
	return ids
}

type member struct {
	rec    SledRecord
	client SledClient
	local  bool // the coordinator's own sled
}

// RunOnce runs one activation and returns its summary. Run calls it; a
// caller that also calls it must not run Run, nor RunOnce twice at once.
// It converges when every in-service sled answered and holds every wanted
// artifact on all its mirrors.
func (r *Replicator) RunOnce(ctx context.Context) (act Activation) {
	act = Activation{Started: time.Now().UTC(), Counters: newCounters()}
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	defer func() {
		act.Finished = time.Now().UTC()
		r.mu.Lock()
		r.running = false
		r.activations++
		r.last = &act
		r.mu.Unlock()
		r.coord.notify()
		if r.opts.OnActivation != nil {
			r.opts.OnActivation(act)
		}
		r.log.Info("replication activation", "generation", act.Generation, "sleds", act.Sleds,
			"planned", act.Planned, "converged", act.Converged, "err", act.Error,
			"put_ok", act.Counters[OpPut].OK, "put_err", act.Counters[OpPut].Err,
			"copy_ok", act.Counters[OpCopy].OK, "copy_err", act.Counters[OpCopy].Err,
			"duration", act.Finished.Sub(act.Started).Round(time.Millisecond))
	}()

	// Sagas a failed undo left unfinished are retried here, not only at
	// start-up; live ones are skipped.
	if _, err := r.coord.Recover(ctx); err != nil {
		r.log.Error("saga recovery", "err", err)
	}
	w, err := r.cat.Wanted(ctx)
	if err != nil {
		act.Error = err.Error()
		r.unknownAll()
		return act
	}
	act.Generation = w.Generation
	members, err := r.members(ctx)
	if err != nil {
		act.Error = err.Error()
		r.unknownAll()
		return act
	}
	act.Sleds = len(members)
	ids := memberIDs(members)

	// Collect.
	invs, err := r.collect(ctx, r.cat.configOf(w), members, &act, false)
	r.setView(w, ids, invs)
	if err != nil {
		act.Error = err.Error()
		return act
	}

	// Plan.
	localHas := make(map[store.Digest]bool)
	for _, inv := range invs {
		if inv.ID == SledID(r.coord.selfSled) && inv.OK {
			for d := range inv.Have {
				localHas[d] = true
			}
		}
	}
	in := PlanInput{
		Generation: w.Generation, Wanted: w.Sorted(), Local: SledID(r.coord.selfSled), LocalHas: localHas,
		Sleds: invs, MinReplication: r.opts.MinReplication, Limits: r.opts.Limits, Rand: r.rnd,
	}
	actions := Plan(in)
	act.Planned = len(actions)

	// Execute.
	byID := make(map[string]member, len(members))
	for _, m := range members {
		byID[m.rec.ID] = m
	}
	results := r.execute(ctx, w, byID, actions, &act)

	// What the rack holds now: the inventory plus what succeeded.
	for i, a := range actions {
		if results[i] != nil {
			continue
		}
		for j := range invs {
			if invs[j].ID == a.Sled {
				if invs[j].Have == nil {
					invs[j].Have = map[store.Digest]int{}
				}
				invs[j].Have[a.Hash] = invs[j].Mirrors
			}
		}
	}
	in.Sleds = invs
	allOK := true
	for _, inv := range invs {
		allOK = allOK && inv.OK
	}
	act.Converged = allOK && Converged(in)
	return act
}

// unknownAll marks every sled's holdings unknown: an activation that
// failed before collect confirmed nothing.
func (r *Replicator) unknownAll() {
	r.mu.Lock()
	for id := range r.view {
		r.view[id] = nil
	}
	r.mu.Unlock()
	r.coord.notify()
}

// members is the local sled plus every other in-service registered sled.
// The local sled is named by its registry record when it has one (so the
// others copy from it at the registered depot URL).
func (r *Replicator) members(ctx context.Context) ([]member, error) {
	self := r.coord.selfSled
	out := []member{{rec: SledRecord{ID: self, State: SledInService}, client: r.opts.Local, local: true}}
	recs, err := r.cat.Sleds(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		if rec.State != SledInService {
			continue
		}
		if rec.ID == self {
			out[0].rec = rec
			continue
		}
		out = append(out, member{rec: rec, client: r.opts.ClientFor(rec)})
	}
	return out, nil
}
