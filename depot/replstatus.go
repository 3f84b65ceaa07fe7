package depot

import (
	"maps"
	"slices"
	"time"

	"depot/store"
)

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
	if rec.DepotURL == "" {
		s.DepotURL = inv.DepotURL
	}
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
