package depot

import (
	"context"
	"maps"
	"slices"
	"time"

	"depot/store"
)

// Replication operations, as counted and recorded.
const (
	OpGetConfig = "get_config"
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
	return Counters{OpGetConfig: {}, OpPutConfig: {}, OpList: {}, OpPut: {}, OpCopy: {}}
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
	// CatalogID and ConfigGeneration are the sled's config as collect
	// last read (or wrote) it; CatalogID is "" for a config that names no
	// catalog, ConfigGeneration nil while the sled is unmanaged.
	CatalogID        string  `json:"catalog_id,omitempty"`
	ConfigGeneration *uint64 `json:"config_generation,omitempty"`
	// Conflict is ConflictCatalog or ConflictGeneration when collect last
	// found this sled driven by another coordinator (and so wrote to no
	// sled); "" otherwise.
	Conflict string `json:"conflict,omitempty"`
}

// ReplicationStatus is GET /v1/replication/status.
type ReplicationStatus struct {
	// CatalogID is this coordinator's catalog, the one its configs carry.
	CatalogID   string          `json:"catalog_id"`
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
	// CatalogError is set when the catalog could not be read for this
	// status; Generation is then unknown (0).
	CatalogError string `json:"catalog_error,omitempty"`
	// Coordinator is this coordinator's id; Leading says whether it runs
	// replication now (on a shared catalog one coordinator leads).
	Coordinator string `json:"coordinator"`
	Leading     bool   `json:"leading"`
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

// sledConfig records the sled's config as collect read or wrote it, and
// the conflict it makes (code "" for none).
func (r *Replicator) sledConfig(rec SledRecord, cfg *Config, code string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sledState(rec)
	s.CatalogID, s.ConfigGeneration, s.Conflict = "", nil, code
	if cfg != nil {
		g := cfg.Generation
		s.CatalogID, s.ConfigGeneration = cfg.CatalogID, &g
	}
	if err != nil {
		s.LastError, s.LastErrorTime = err.Error(), time.Now().UTC()
	}
}

func (r *Replicator) sledSeen(rec SledRecord, inv SledInventory, ours Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sledState(rec)
	s.DepotURL = inv.DepotURL
	s.Mirrors, s.LastInventory = inv.Mirrors, time.Now().UTC()
	n := 0
	for _, d := range ours.Artifacts {
		if inv.Have[d] > 0 {
			n++
		}
	}
	s.Artifacts = n
}

// setView replaces what progress counts with what this activation's
// collect confirmed: for each member, the wanted artifacts its listing
// showed, or unknown (nil) when the sled could not be listed. Nothing of
// an earlier activation survives, so a sled that stops answering, or
// serves another catalog, is never counted on old news.
func (r *Replicator) setView(w Wanted, ids []string, invs []SledInventory) {
	view := make(map[string]map[store.Digest]bool, len(ids))
	for _, id := range ids {
		view[id] = nil
	}
	for _, inv := range invs {
		if !inv.OK {
			continue
		}
		have := make(map[store.Digest]bool)
		for d, n := range inv.Have {
			if _, wanted := w.Artifacts[d]; wanted && n > 0 {
				have[d] = true
			}
		}
		view[string(inv.ID)] = have
	}
	r.mu.Lock()
	r.view, r.inService = view, ids
	for id := range r.sleds {
		if !slices.Contains(ids, id) {
			delete(r.sleds, id) // expunged or removed
		}
	}
	r.mu.Unlock()
	r.coord.notify()
}

// gained records that a request put h on sled: progress counts it at
// once, so a repository is durable as soon as its quorum's requests
// succeed.
func (r *Replicator) gained(sled string, h store.Digest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	have := r.view[sled]
	if have == nil || have[h] {
		return // unknown (not a target), or a re-copy
	}
	have[h] = true
	if s, ok := r.sleds[sled]; ok {
		s.Artifacts++
	}
}

// Status returns the replication status.
func (r *Replicator) Status(ctx context.Context) ReplicationStatus {
	w, werr := r.cat.Wanted(ctx)
	recovery := r.coord.Recovery()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReplicationStatus{
		CatalogID:    r.cat.ID(),
		SagaRecovery: recovery,
		Generation:   w.Generation, Activations: r.activations, Running: r.running,
		Lifetime:    r.lifetime.clone(),
		Coordinator: r.coord.presence.ID(), Leading: r.leading.Load(),
	}
	if werr != nil {
		// Generation is unknown, not 0: say why.
		st.CatalogError = werr.Error()
		r.log.Warn("replication status: read catalog", "err", werr)
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
