package depot

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"slices"

	"depot/store"
)

// This file is the replication planner (DESIGN.md §5, step 2): a pure
// function from what the sleds reported, what the catalog wants and the
// limits of one activation to the requests that activation should make. It
// does no I/O, reads no clock and keeps no state; all its randomness comes
// from PlanInput.Rand, so a seed reproduces a plan exactly.

// SledID names a sled in the coordinator's registry.
type SledID string

// SledInventory is what one in-service sled reported this activation.
type SledInventory struct {
	ID SledID
	// DepotURL is the base URL of the sled's repo-depot API, the one peers
	// copy from. A sled without one still counts as a holder but is never
	// chosen as a copy source.
	DepotURL string
	// Mirrors is the number of datasets on the sled (usually 2). A value
	// below 1 is treated as 1.
	Mirrors int
	// Have is the artifacts the sled listed, each with the number of its
	// mirrors holding it. Entries of 0 or less are treated as absent.
	Have map[store.Digest]int
	// OK is false when the sled's config or listing failed this
	// activation: nothing is planned to or from it.
	OK bool
}

// PlanLimits bound one activation. A value of 0 (or less) is unlimited.
type PlanLimits struct {
	// MaxRequests bounds all actions together. PUTs are planned first, so
	// they take the budget before copies do.
	MaxRequests int
	// MaxPuts bounds PUT actions.
	MaxPuts int
	// MaxCopiesPerSled bounds copy actions (re-copies included) that
	// target one sled. PUTs do not count against it.
	MaxCopiesPerSled int
}

// PlanInput is everything Plan looks at. Plan neither modifies it nor keeps
// any reference to it, except that it draws from Rand.
type PlanInput struct {
	// Generation is the catalog generation the plan is made for. Plan does
	// not use it, except to seed the random source when Rand is nil; the
	// executor sends it with every request.
	Generation uint64
	// Wanted is the catalog's wanted set, in any order; duplicates are
	// ignored. Nothing outside it is ever planned.
	Wanted []store.Digest
	// Local is the coordinator's own sled ("" if none). When it lacks an
	// artifact that needs PUTs, it is the first PUT target: the write is
	// local and crosses no network.
	Local SledID
	// LocalHas is what the coordinator can PUT from its local copy.
	LocalHas map[store.Digest]bool
	// Sleds is the in-service sleds (expunged ones are not passed), in any
	// order. IDs are expected to be unique; of duplicates, only the first
	// is used.
	Sleds []SledInventory
	// MinReplication is the quorum: the number of sleds PUTs bring an
	// artifact to. A value below 1 is treated as 1.
	MinReplication int
	Limits         PlanLimits
	// Rand is the only source of randomness, seeded by the caller. If nil,
	// Plan uses a PCG source seeded with Generation, so it stays
	// deterministic.
	Rand *rand.Rand
}

// ActionKind is the request an Action stands for.
type ActionKind string

const (
	// ActionPut is PUT /artifacts/{sha256} from the coordinator's local
	// copy.
	ActionPut ActionKind = "put"
	// ActionCopy is POST /artifacts/{sha256}/copy-from-depot with Source's
	// DepotURL.
	ActionCopy ActionKind = "copy"
)

// Plan phases, in order of priority. No copy depends on a PUT of the same
// plan (copies come only from sleds that held the artifact when the plan
// was made), so an executor may run the actions of both phases
// concurrently; running phase 0 first lands the quorum sooner.
const (
	PhasePut  = 0
	PhaseCopy = 1
)

// Action is one request to one sled.
type Action struct {
	Kind ActionKind
	// Phase is PhasePut for PUTs (artifacts too few sleds hold) and
	// PhaseCopy for copies.
	Phase int
	// Sled is the target.
	Sled SledID
	Hash store.Digest
	// Source is, for copies only, an OK sled that held the artifact when
	// the plan was made; never Sled itself and never a sled that is only
	// being PUT to in the same plan.
	Source SledID
	// SourceURL is Source's DepotURL.
	SourceURL string
	// Recopy is true when Sled already lists the artifact, but on fewer of
	// its mirrors than it has.
	Recopy bool
}

// Plan returns the actions of one replication activation, sorted by
// (Phase, Sled, Hash), at most one per (Sled, Hash). It is a pure function:
// the same input and the same Rand state give the same plan, whatever the
// order of in.Sleds and in.Wanted. Calls are safe to run concurrently as
// long as they do not share a Rand.
//
// For every wanted hash, its holders are the OK sleds that list it (with at
// least one copy). Then:
//
//   - PUTs (phase 0): if fewer than MinReplication sleds hold it and
//     LocalHas has it, PUTs from the coordinator's local copy go to OK sleds
//     that lack it (Local first, the rest chosen with Rand) until holders
//     plus PUTs reach MinReplication, never beyond.
//   - copies (phase 1): every other OK sled that lacks it gets a
//     copy-from-depot from a random holder. With no holder, no copies:
//     the next activation sees the PUTs' targets as holders.
//   - re-copies (phase 1, Recopy): an OK holder with fewer copies than
//     Mirrors copies it again from a random other holder with a full set,
//     else from any other holder, else not at all.
//
// Sleds with OK false get nothing and are never sources. Nothing is ever
// deleted: the sleds' reconcilers do that from the config.
//
// Limits: PUTs are planned for all hashes first, then copies to sleds that
// lack an artifact, then re-copies (a missing artifact matters more than a
// missing mirror), and each stops when its caps are reached. A sled that was
// to get a PUT the PUT cap left out gets a copy instead, if there is a
// holder. So no action is left out unless a cap binds.
//
// Fairness: each pass walks the hashes in sorted order rotated by a
// Rand-chosen offset, and the sleds likewise, so when a cap binds every hash
// and every sled has the same chance each activation of coming first. A hash
// whose requests keep failing cannot hold the budget forever.
//
// Convergence: with caps R (MaxRequests), P (MaxPuts), C (MaxCopiesPerSled),
// a rack converges within F + D/R + U/P + 2*(Dmax/C) + 2 activations, where
// F counts activations in which a request failed (or left a partial set), a
// listing failed or a sled joined; D is the missing or partial (sled, hash)
// pairs and Dmax the most on one sled (each joining sled adds its own);
// U is the PUTs owed to the quorum; and an unlimited cap's term is 0.
// plan_test.go proves and tests it. It assumes every wanted hash is in
// LocalHas or on some sled, and that a lone partial copy is repaired by its
// sled's scrub, not by the planner.
func Plan(in PlanInput) []Action {
	p := newPlanner(in)
	if len(p.wanted) == 0 || len(p.sleds) == 0 {
		return nil
	}
	p.rotate()
	p.planPuts()
	p.planCopies()
	p.planRecopies()
	slices.SortFunc(p.out, compareActions)
	return p.out
}

// Converged reports whether every OK sled in in.Sleds holds every wanted
// hash on all its mirrors (a count above Mirrors, seen while a sled's
// mirrors change, counts as full). With wanted hashes but no OK sled it is
// false: nothing is known to hold anything. Sleds with OK false are not
// looked at, so a caller that needs the whole rack must pass every sled as
// OK. It draws nothing from in.Rand, so calling it between plans does not
// change them.
func Converged(in PlanInput) bool {
	p := newPlanner(in)
	if len(p.wanted) == 0 {
		return true
	}
	if len(p.sleds) == 0 {
		return false
	}
	for _, s := range p.sleds {
		for _, h := range p.wanted {
			if !planFull(s, h) {
				return false
			}
		}
	}
	return true
}

// Summarize counts the PUTs and the copies (re-copies included) in actions.
func Summarize(actions []Action) (puts, copies int) {
	for _, a := range actions {
		switch a.Kind {
		case ActionPut:
			puts++
		case ActionCopy:
			copies++
		}
	}
	return puts, copies
}

func compareActions(a, b Action) int {
	if c := cmp.Compare(a.Phase, b.Phase); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Sled, b.Sled); c != 0 {
		return c
	}
	return bytes.Compare(a.Hash[:], b.Hash[:])
}

// planKey is one (sled, hash) pair.
type planKey struct {
	sled SledID
	hash store.Digest
}

// planner holds one Plan call's working state.
type planner struct {
	in     PlanInput
	rnd    *rand.Rand
	min    int
	wanted []store.Digest   // sorted and deduplicated; rotated by Plan
	sleds  []*SledInventory // OK, deduplicated, sorted by ID; rotated by Plan
	out    []Action         // in planning order until Plan sorts it
	puts   int              // PUTs in out
	copies map[SledID]int   // copies in out, by target
	putTo  map[planKey]bool // (sled, hash) pairs a PUT in out targets
}

func newPlanner(in PlanInput) *planner {
	p := &planner{
		in:     in,
		rnd:    in.Rand,
		min:    max(in.MinReplication, 1),
		copies: map[SledID]int{},
		putTo:  map[planKey]bool{},
	}
	if p.rnd == nil {
		p.rnd = rand.New(rand.NewPCG(in.Generation, 0x6465706f74)) // "depot"
	}

	p.wanted = slices.Clone(in.Wanted)
	slices.SortFunc(p.wanted, func(a, b store.Digest) int { return bytes.Compare(a[:], b[:]) })
	p.wanted = slices.Compact(p.wanted)

	// Deduplicate in input order (the first report wins), then sort.
	seen := make(map[SledID]bool, len(in.Sleds))
	for i := range in.Sleds {
		s := &in.Sleds[i]
		if seen[s.ID] {
			continue
		}
		seen[s.ID] = true
		if s.OK {
			p.sleds = append(p.sleds, s)
		}
	}
	slices.SortFunc(p.sleds, func(a, b *SledInventory) int { return cmp.Compare(a.ID, b.ID) })
	return p
}

// rotate draws the offsets that make the passes fair (see Plan). Only Plan
// calls it, so Converged draws nothing.
func (p *planner) rotate() {
	if len(p.wanted) > 1 {
		k := p.rnd.IntN(len(p.wanted))
		p.wanted = slices.Concat(p.wanted[k:], p.wanted[:k])
	}
	if len(p.sleds) > 1 {
		k := p.rnd.IntN(len(p.sleds))
		p.sleds = slices.Concat(p.sleds[k:], p.sleds[:k])
	}
}

func planCount(s *SledInventory, h store.Digest) int { return max(s.Have[h], 0) }

func planMirrors(s *SledInventory) int { return max(s.Mirrors, 1) }

func planFull(s *SledInventory, h store.Digest) bool { return planCount(s, h) >= planMirrors(s) }

func planUnlimited(n int) bool { return n <= 0 }

// requestsLeft reports whether MaxRequests allows one more action.
func (p *planner) requestsLeft() bool {
	return planUnlimited(p.in.Limits.MaxRequests) || len(p.out) < p.in.Limits.MaxRequests
}

// putsLeft reports whether MaxRequests and MaxPuts allow one more PUT.
func (p *planner) putsLeft() bool {
	return p.requestsLeft() && (planUnlimited(p.in.Limits.MaxPuts) || p.puts < p.in.Limits.MaxPuts)
}

// copyRoom reports whether MaxCopiesPerSled allows one more copy to sled.
func (p *planner) copyRoom(sled SledID) bool {
	return planUnlimited(p.in.Limits.MaxCopiesPerSled) || p.copies[sled] < p.in.Limits.MaxCopiesPerSled
}

// holders returns the OK sleds holding h, in p.sleds order.
func (p *planner) holders(h store.Digest) []*SledInventory {
	var hs []*SledInventory
	for _, s := range p.sleds {
		if planCount(s, h) > 0 {
			hs = append(hs, s)
		}
	}
	return hs
}

// planPuts is phase 0. It stops at the first PUT the caps refuse: the caps
// are global, so they would refuse every later one too.
func (p *planner) planPuts() {
	for _, h := range p.wanted {
		if !p.in.LocalHas[h] {
			continue
		}
		need := p.min - len(p.holders(h))
		if need <= 0 {
			continue
		}
		var lacking []*SledInventory
		first := 0 // lacking[:first] is fixed: the Local sled
		for _, s := range p.sleds {
			if planCount(s, h) > 0 {
				continue
			}
			lacking = append(lacking, s)
			if p.in.Local != "" && s.ID == p.in.Local {
				last := len(lacking) - 1
				lacking[0], lacking[last] = lacking[last], lacking[0]
				first = 1
			}
		}
		// A partial Fisher-Yates shuffle picks the rest at random.
		for i := 0; i < need && i < len(lacking); i++ {
			if !p.putsLeft() {
				return
			}
			if i >= first {
				j := i + p.rnd.IntN(len(lacking)-i)
				lacking[i], lacking[j] = lacking[j], lacking[i]
			}
			t := lacking[i]
			p.out = append(p.out, Action{Kind: ActionPut, Phase: PhasePut, Sled: t.ID, Hash: h})
			p.puts++
			p.putTo[planKey{t.ID, h}] = true
		}
	}
}

// planCopies is phase 1 for sleds that lack an artifact.
func (p *planner) planCopies() {
	for _, h := range p.wanted {
		var sources []*SledInventory
		for _, s := range p.holders(h) {
			if s.DepotURL != "" {
				sources = append(sources, s)
			}
		}
		if len(sources) == 0 {
			continue
		}
		for _, t := range p.sleds {
			if planCount(t, h) > 0 || p.putTo[planKey{t.ID, h}] || !p.copyRoom(t.ID) {
				continue
			}
			if !p.requestsLeft() {
				return
			}
			p.addCopy(t, h, sources[p.rnd.IntN(len(sources))], false)
		}
	}
}

// planRecopies is phase 1 for holders with fewer copies than mirrors.
func (p *planner) planRecopies() {
	for _, h := range p.wanted {
		holders := p.holders(h)
		for _, t := range holders {
			if planFull(t, h) || !p.copyRoom(t.ID) {
				continue
			}
			var fulls, others []*SledInventory
			for _, s := range holders {
				if s == t || s.DepotURL == "" {
					continue
				}
				others = append(others, s)
				if planFull(s, h) {
					fulls = append(fulls, s)
				}
			}
			if len(fulls) > 0 {
				others = fulls
			}
			if len(others) == 0 {
				continue
			}
			if !p.requestsLeft() {
				return
			}
			p.addCopy(t, h, others[p.rnd.IntN(len(others))], true)
		}
	}
}

func (p *planner) addCopy(t *SledInventory, h store.Digest, src *SledInventory, recopy bool) {
	p.out = append(p.out, Action{
		Kind:      ActionCopy,
		Phase:     PhaseCopy,
		Sled:      t.ID,
		Hash:      h,
		Source:    src.ID,
		SourceURL: src.DepotURL,
		Recopy:    recopy,
	})
	p.copies[t.ID]++
}
