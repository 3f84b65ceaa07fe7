package depot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"depot/store"
)

// SledClient is what the coordinator needs from one sled. The HTTP client
// in server/client implements it for remote sleds; LocalSled adapts the
// coordinator's own. Errors map to this package's and store's sentinels
// (ErrConfigGeneration, ErrTooManyCopies, store.ErrHashMismatch, ...).
type SledClient interface {
	// PutConfig installs the artifact config (PUT /artifacts-config).
	PutConfig(ctx context.Context, cfg Config) error
	// List returns the artifacts the sled holds, with copies each.
	List(ctx context.Context) (map[store.Digest]int, error)
	// Info returns the sled's depot URL and number of mirrors (/status).
	Info(ctx context.Context) (SledInfo, error)
	// PutArtifact streams an artifact to the sled at generation gen.
	PutArtifact(ctx context.Context, d store.Digest, gen uint64, body io.Reader, size int64) error
	// CopyFromDepot starts a copy job on the sled from sourceURL.
	CopyFromDepot(ctx context.Context, d store.Digest, gen uint64, sourceURL string) error
	// WaitCopy long-polls the sled's copy job for d.
	WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (CopyJob, error)
}

// SledInfo is what a sled says about itself.
type SledInfo struct {
	DepotURL string
	Mirrors  int
}

// LocalSled adapts the coordinator's own sled to SledClient, in process.
type LocalSled struct {
	Sled     *Sled
	DepotURL string // where peers copy from this sled
}

var _ SledClient = LocalSled{}

func (l LocalSled) PutConfig(ctx context.Context, cfg Config) error {
	return l.Sled.SetConfig(ctx, cfg)
}
func (l LocalSled) List(ctx context.Context) (map[store.Digest]int, error) {
	infos, err := l.Sled.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[store.Digest]int, len(infos))
	for _, i := range infos {
		out[i.Digest] = i.Copies
	}
	return out, nil
}
func (l LocalSled) Info(context.Context) (SledInfo, error) {
	return SledInfo{DepotURL: l.DepotURL, Mirrors: len(l.Sled.Mirrors())}, nil
}
func (l LocalSled) PutArtifact(ctx context.Context, d store.Digest, gen uint64, body io.Reader, size int64) error {
	_, err := l.Sled.Put(ctx, d, &gen, body, size)
	return err
}
func (l LocalSled) CopyFromDepot(ctx context.Context, d store.Digest, gen uint64, src string) error {
	return l.Sled.CopyFromDepot(ctx, d, &gen, src)
}
func (l LocalSled) WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (CopyJob, error) {
	return l.Sled.WaitCopy(ctx, d, wait)
}

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
	// Concurrency bounds requests in flight; 0 = 16.
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
	LocalStore interface {
		Open(ctx context.Context, d store.Digest) (*store.Blob, error)
	}
	Logger *slog.Logger
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

// Replication operations, as counted and recorded.
const (
	OpPutConfig = "put_config"
	OpList      = "list"
	OpPut       = "put"
	OpCopy      = "copy"
)

// OpCounts counts one operation's outcomes.
type OpCounts struct {
	OK  int64 `json:"ok"`
	Err int64 `json:"err"`
}

// Counters are per-operation outcomes.
type Counters map[string]*OpCounts

func newCounters() Counters {
	return Counters{OpPutConfig: {}, OpList: {}, OpPut: {}, OpCopy: {}}
}

func (c Counters) add(op string, err error) {
	if err != nil {
		c[op].Err++
	} else {
		c[op].OK++
	}
}

func (c Counters) clone() Counters {
	out := make(Counters, len(c))
	for k, v := range c {
		cp := *v
		out[k] = &cp
	}
	return out
}

// RequestRecord is one request in the ring buffer.
type RequestRecord struct {
	Time       time.Time     `json:"time"`
	Sled       string        `json:"sled"`
	Op         string        `json:"op"`
	Hash       *store.Digest `json:"hash,omitempty"`
	Source     string        `json:"source,omitempty"`
	Generation uint64        `json:"generation"`
	DurationMS int64         `json:"duration_ms"`
	Error      string        `json:"error,omitempty"`
}

// Activation sums up one activation.
type Activation struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished,omitzero"`
	Generation uint64    `json:"generation"`
	Sleds      int       `json:"sleds"`
	Planned    int       `json:"planned"`
	Counters   Counters  `json:"counters"`
	Converged  bool      `json:"converged"`
	Error      string    `json:"error,omitempty"`
}

// SledState is the coordinator's view of one sled.
type SledState struct {
	SledRecord
	Mirrors       int       `json:"mirrors"`
	Artifacts     int       `json:"artifacts"` // wanted artifacts it holds
	LastInventory time.Time `json:"last_inventory,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// ReplicationStatus is GET /v1/replication/status.
type ReplicationStatus struct {
	Generation  uint64          `json:"generation"`
	Activations int64           `json:"activations"`
	Running     bool            `json:"running"`
	Last        *Activation     `json:"last_activation"`
	Lifetime    Counters        `json:"lifetime"`
	Sleds       []SledState     `json:"sleds"`
	Recent      []RequestRecord `json:"recent_requests"` // oldest first
	// SagaRecovery is what upload saga recovery did (start-up and every
	// activation).
	SagaRecovery RecoveryStatus `json:"saga_recovery"`
}

// Replicator is the replication loop: collect → plan → execute, on a
// period, after every change of the wanted set, and on demand. Safe for
// concurrent use.
type Replicator struct {
	opts  ReplicationOptions
	cat   *Catalog
	coord *Coordinator
	log   *slog.Logger
	rnd   *rand.Rand // used by the loop goroutine only

	kick chan struct{}

	mu          sync.Mutex // guards everything below
	running     bool
	activations int64
	last        *Activation
	lifetime    Counters
	ring        []RequestRecord
	ringNext    int
	sleds       map[string]*SledState
	holders     map[store.Digest]map[string]bool // wanted hash → sleds holding it
	inService   []string                         // sled ids of the last activation
}

// NewReplicator builds the loop; Run starts it.
func NewReplicator(coord *Coordinator, opts ReplicationOptions) *Replicator {
	opts.defaults()
	r := &Replicator{
		opts: opts, cat: coord.cat, coord: coord, log: opts.Logger,
		rnd:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		kick:     make(chan struct{}, 1),
		lifetime: newCounters(),
		sleds:    make(map[string]*SledState),
	}
	coord.SetOnChange(r.Activate)
	return r
}

// Activate asks for an activation now; requests while one is queued fold
// into it.
func (r *Replicator) Activate() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run runs activations until ctx ends.
func (r *Replicator) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Period)
	defer t.Stop()
	r.Activate()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
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

type member struct {
	rec    SledRecord
	client SledClient
}

// RunOnce runs one activation and returns its summary.
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
	w, err := r.cat.Wanted()
	if err != nil {
		act.Error = err.Error()
		return act
	}
	act.Generation = w.Generation
	members, err := r.members()
	if err != nil {
		act.Error = err.Error()
		return act
	}
	act.Sleds = len(members)

	// Collect.
	invs, err := r.collect(ctx, w, members, &act)
	if err != nil {
		act.Error = err.Error()
		return act
	}

	// Plan.
	localHas := make(map[store.Digest]bool)
	for _, inv := range invs {
		if inv.ID == LocalSledID && inv.OK {
			for d := range inv.Have {
				localHas[d] = true
			}
		}
	}
	in := PlanInput{
		Generation: w.Generation, Wanted: w.Sorted(), Local: LocalSledID, LocalHas: localHas,
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
	r.recordHoldings(w, invs)
	return act
}

// members is the local sled plus every in-service registered sled.
func (r *Replicator) members() ([]member, error) {
	out := []member{{rec: SledRecord{ID: LocalSledID, State: SledInService}, client: r.opts.Local}}
	recs, err := r.cat.Sleds()
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		if rec.State != SledInService {
			continue
		}
		out = append(out, member{rec: rec, client: r.opts.ClientFor(rec)})
	}
	return out, nil
}

// collect puts the config on every sled, then lists it, all concurrently.
// A sled that refuses the config because its generation is higher means
// another coordinator is ahead: the activation stops.
func (r *Replicator) collect(ctx context.Context, w Wanted, members []member, act *Activation) ([]SledInventory, error) {
	invs := make([]SledInventory, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv := SledInventory{ID: SledID(m.rec.ID)}
			defer func() { invs[i] = inv }()
			call := func(op string, fn func(ctx context.Context) error) error {
				cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
				defer cancel()
				start := time.Now()
				err := fn(cctx)
				r.record(act, RequestRecord{Sled: m.rec.ID, Op: op, Generation: w.Generation}, start, err)
				return err
			}
			ictx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
			info, err := m.client.Info(ictx)
			cancel()
			if err != nil {
				r.sledError(m.rec, fmt.Errorf("status: %w", err))
				return
			}
			// The depot URL comes from the registry, never from what the
			// sled says about itself: a sled that lies would point its
			// peers' copies anywhere. Without one it is no copy source.
			// The local sled's is this daemon's own setting.
			inv.DepotURL, inv.Mirrors = m.rec.DepotURL, info.Mirrors
			if m.rec.ID == LocalSledID {
				inv.DepotURL = info.DepotURL
			}
			if w.Generation > 0 {
				if err := call(OpPutConfig, func(ctx context.Context) error {
					return m.client.PutConfig(ctx, Config{Generation: w.Generation, Artifacts: w.Sorted()})
				}); err != nil {
					errs[i] = err
					r.sledError(m.rec, err)
					return
				}
			}
			var have map[store.Digest]int
			if err := call(OpList, func(ctx context.Context) (err error) {
				have, err = m.client.List(ctx)
				return err
			}); err != nil {
				r.sledError(m.rec, err)
				return
			}
			inv.Have, inv.OK = have, true
			r.sledSeen(m.rec, inv, w)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if errors.Is(err, ErrConfigGeneration) {
			return invs, fmt.Errorf("sled %s refused generation %d: another coordinator is ahead: %w", members[i].rec.ID, w.Generation, err)
		}
	}
	return invs, nil
}

// execute runs the plan: PUTs (phase 0) first, then copies (phase 1), with
// bounded concurrency overall and per target sled for copies. No retries:
// the next activation re-plans. It returns each action's error.
func (r *Replicator) execute(ctx context.Context, w Wanted, members map[string]member, actions []Action, act *Activation) []error {
	results := make([]error, len(actions))
	sem := make(chan struct{}, r.opts.Concurrency)
	perSled := make(map[SledID]chan struct{})
	for _, a := range actions {
		if _, ok := perSled[a.Sled]; !ok {
			perSled[a.Sled] = make(chan struct{}, r.opts.CopiesPerSled)
		}
	}
	for phase := 0; phase <= 1; phase++ {
		var wg sync.WaitGroup
		for i, a := range actions {
			if a.Phase != phase {
				continue
			}
			m, ok := members[string(a.Sled)]
			if !ok {
				results[i] = fmt.Errorf("sled %s is not a member", a.Sled)
				continue
			}
			var slot chan struct{}
			if a.Kind == ActionCopy {
				slot = perSled[a.Sled]
				select {
				case slot <- struct{}{}:
				case <-ctx.Done():
					results[i] = ctx.Err()
					continue
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = ctx.Err()
				if slot != nil {
					<-slot
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if slot != nil {
					defer func() { <-slot }()
				}
				start := time.Now()
				h := a.Hash
				rec := RequestRecord{Sled: m.rec.ID, Hash: &h, Generation: w.Generation}
				var err error
				if a.Kind == ActionPut {
					rec.Op = OpPut
					err = r.put(ctx, m.client, a, w.Generation)
				} else {
					rec.Op, rec.Source = OpCopy, string(a.Source)
					err = r.copy(ctx, m.client, a, w.Generation)
				}
				results[i] = err
				r.record(act, rec, start, err)
				if err != nil {
					r.sledError(m.rec, err)
				}
			}()
		}
		wg.Wait()
	}
	return results
}

func (r *Replicator) put(ctx context.Context, c SledClient, a Action, gen uint64) error {
	b, err := r.opts.LocalStore.Open(ctx, a.Hash)
	if err != nil {
		return fmt.Errorf("open local copy: %w", err)
	}
	defer b.File.Close()
	return c.PutArtifact(ctx, a.Hash, gen, b.File, b.Size)
}

// copy starts a copy job and long-polls it to its end.
func (r *Replicator) copy(ctx context.Context, c SledClient, a Action, gen uint64) error {
	if err := c.CopyFromDepot(ctx, a.Hash, gen, a.SourceURL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.CopyTimeout)
	defer cancel()
	for {
		job, err := c.WaitCopy(ctx, a.Hash, 30*time.Second)
		if err != nil {
			return fmt.Errorf("wait for copy: %w", err)
		}
		switch job.State {
		case CopySucceeded:
			return nil
		case CopyFailed:
			return fmt.Errorf("copy from %s failed: %s", a.Source, job.Error)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("copy from %s still running after %s: %w", a.Source, r.opts.CopyTimeout, ctx.Err())
		}
	}
}

// record counts a request and keeps it in the ring buffer.
func (r *Replicator) record(act *Activation, rec RequestRecord, start time.Time, err error) {
	rec.Time = start.UTC()
	rec.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		rec.Error = err.Error()
	}
	r.mu.Lock()
	act.Counters.add(rec.Op, err)
	r.lifetime.add(rec.Op, err)
	if len(r.ring) < r.opts.RingSize {
		r.ring = append(r.ring, rec)
	} else {
		r.ring[r.ringNext] = rec
		r.ringNext = (r.ringNext + 1) % r.opts.RingSize
	}
	r.mu.Unlock()
	r.coord.notify()
}

func (r *Replicator) sledState(rec SledRecord) *SledState {
	s, ok := r.sleds[rec.ID]
	if !ok {
		s = &SledState{}
		r.sleds[rec.ID] = s
	}
	s.SledRecord = rec
	return s
}

func (r *Replicator) sledError(rec SledRecord, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sledState(rec)
	s.LastError, s.LastErrorTime = err.Error(), time.Now().UTC()
}

func (r *Replicator) sledSeen(rec SledRecord, inv SledInventory, w Wanted) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sledState(rec)
	s.DepotURL = inv.DepotURL
	s.Mirrors, s.LastInventory = inv.Mirrors, time.Now().UTC()
	n := 0
	for d := range w.Artifacts {
		if inv.Have[d] > 0 {
			n++
		}
	}
	s.Artifacts = n
}

func (r *Replicator) recordHoldings(w Wanted, invs []SledInventory) {
	holders := make(map[store.Digest]map[string]bool, len(w.Artifacts))
	var ids []string
	for _, inv := range invs {
		ids = append(ids, string(inv.ID))
		for d, n := range inv.Have {
			if _, wanted := w.Artifacts[d]; !wanted || n == 0 {
				continue
			}
			if holders[d] == nil {
				holders[d] = make(map[string]bool)
			}
			holders[d][string(inv.ID)] = true
		}
	}
	r.mu.Lock()
	r.holders, r.inService = holders, ids
	for _, inv := range invs {
		if s, ok := r.sleds[string(inv.ID)]; ok && inv.OK {
			n := 0
			for d := range w.Artifacts {
				if inv.Have[d] > 0 {
					n++
				}
			}
			s.Artifacts = n // after this activation's requests
		}
	}
	for id := range r.sleds {
		if !slices.Contains(ids, id) {
			delete(r.sleds, id) // expunged or removed
		}
	}
	r.mu.Unlock()
}

// Status returns the replication status.
func (r *Replicator) Status() ReplicationStatus {
	w, _ := r.cat.Wanted()
	recovery := r.coord.Recovery()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReplicationStatus{
		SagaRecovery: recovery,
		Generation:   w.Generation, Activations: r.activations, Running: r.running,
		Lifetime: r.lifetime.clone(),
	}
	if r.last != nil {
		last := *r.last
		last.Counters = r.last.Counters.clone()
		st.Last = &last
	}
	st.Recent = make([]RequestRecord, 0, len(r.ring))
	st.Recent = append(st.Recent, r.ring[r.ringNext:]...)
	st.Recent = append(st.Recent, r.ring[:r.ringNext]...)
	for _, id := range slices.Sorted(maps.Keys(r.sleds)) {
		st.Sleds = append(st.Sleds, *r.sleds[id])
	}
	return st
}

// Repository replication states.
const (
	RepoReplicating = "replicating"
	RepoDurable     = "durable"  // every artifact on MinReplication sleds
	RepoComplete    = "complete" // every artifact on every in-service sled
)

// ArtifactProgress is one artifact of a repository with the sleds holding it.
type ArtifactProgress struct {
	RepoArtifact
	Sleds []string `json:"sleds"`
}

// RepoProgress is a repository with its replication state.
type RepoProgress struct {
	Repo
	State          string             `json:"state"`
	MinReplication int                `json:"min_replication"`
	InService      int                `json:"in_service_sleds"`
	Artifacts      []ArtifactProgress `json:"artifacts"`
}

// Progress returns the repository's replication state as of the last
// activation.
func (r *Replicator) Progress(repo Repo) RepoProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := RepoProgress{Repo: repo, MinReplication: r.opts.MinReplication, InService: len(r.inService)}
	durable, complete := true, len(r.inService) > 0
	for _, a := range repo.Artifacts {
		ap := ArtifactProgress{RepoArtifact: a, Sleds: []string{}}
		for _, id := range r.inService {
			if r.holders[a.Hash][id] {
				ap.Sleds = append(ap.Sleds, id)
			}
		}
		if len(ap.Sleds) < r.opts.MinReplication {
			durable = false
		}
		if len(ap.Sleds) < len(r.inService) {
			complete = false
		}
		p.Artifacts = append(p.Artifacts, ap)
	}
	switch {
	case durable && complete:
		p.State = RepoComplete
	case durable:
		p.State = RepoDurable
	default:
		p.State = RepoReplicating
	}
	return p
}
