package depot_test

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"depot/depot"
	"depot/store"
)

// Tests of the replication planner: tables for the rules, properties over
// random racks, and a simulated rack that must converge within a proven
// number of activations. Every helper here is prefixed "plan" so that it
// cannot collide with the other tests of package depot_test.

// planHash is a distinct digest for each i; its hex form starts with i in
// two hex digits, so digests sort by i and print briefly.
func planHash(i int) store.Digest {
	var d store.Digest
	d[0] = byte(i)
	d[31] = 0x5a
	return d
}

// planHashes is planHash for each of is.
func planHashes(is ...int) []store.Digest {
	out := make([]store.Digest, len(is))
	for k, i := range is {
		out[k] = planHash(i)
	}
	return out
}

// planSet is a LocalHas set of planHash(i) for each of is.
func planSet(is ...int) map[store.Digest]bool {
	out := map[store.Digest]bool{}
	for _, i := range is {
		out[planHash(i)] = true
	}
	return out
}

// planSled is an OK sled with two mirrors; have maps planHash indices to
// copies.
func planSled(id string, have map[int]int) depot.SledInventory {
	inv := depot.SledInventory{
		ID:       depot.SledID(id),
		DepotURL: "http://" + id + ":12348",
		Mirrors:  2,
		Have:     map[store.Digest]int{},
		OK:       true,
	}
	for i, n := range have {
		inv.Have[planHash(i)] = n
	}
	return inv
}

// planDown is s with a failed listing.
func planDown(s depot.SledInventory) depot.SledInventory { s.OK = false; return s }

// planMirrors is s with m mirrors.
func planMirrors(s depot.SledInventory, m int) depot.SledInventory { s.Mirrors = m; return s }

// planNoURL is s without a depot URL.
func planNoURL(s depot.SledInventory) depot.SledInventory { s.DepotURL = ""; return s }

// planEmpty is n OK, empty sleds named s00, s01, ...
func planEmpty(n int) []depot.SledInventory {
	out := make([]depot.SledInventory, n)
	for i := range out {
		out[i] = planSled(fmt.Sprintf("s%02d", i), nil)
	}
	return out
}

// planLine prints an action as "put b 01", "copy c 01 <- a" or
// "recopy c 01 <- a" (the hash as its first byte).
func planLine(a depot.Action) string {
	h := a.Hash.String()[:2]
	switch {
	case a.Kind == depot.ActionPut:
		return fmt.Sprintf("put %s %s", a.Sled, h)
	case a.Recopy:
		return fmt.Sprintf("recopy %s %s <- %s", a.Sled, h, a.Source)
	default:
		return fmt.Sprintf("copy %s %s <- %s", a.Sled, h, a.Source)
	}
}

func planLines(actions []depot.Action) []string {
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = planLine(a)
	}
	return out
}

// planTargets is the sorted targets of the actions of one kind.
func planTargets(actions []depot.Action, kind depot.ActionKind) []string {
	var out []string
	for _, a := range actions {
		if a.Kind == kind {
			out = append(out, string(a.Sled))
		}
	}
	slices.Sort(out)
	return out
}

func TestPlan_Rules(t *testing.T) {
	tests := []struct {
		name string
		in   depot.PlanInput
		// want is the exact plan, as planLine prints it, when it does not
		// depend on the random source; check judges it otherwise.
		want  []string
		check func(t *testing.T, out []depot.Action)
	}{
		{
			name: "nothing wanted plans nothing",
			in: depot.PlanInput{
				LocalHas: planSet(1),
				Sleds:    []depot.SledInventory{planSled("a", map[int]int{1: 2}), planSled("b", nil)},
			},
			want: nil,
		},
		{
			name: "no sleds plans nothing",
			in:   depot.PlanInput{Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 3},
			want: nil,
		},
		{
			name: "fresh upload with min 1: copies from the local sled to every other, no PUTs",
			in: depot.PlanInput{
				Wanted: planHashes(1, 2), Local: "a", LocalHas: planSet(1, 2), MinReplication: 1,
				Sleds: []depot.SledInventory{
					planSled("c", nil), planSled("a", map[int]int{1: 2, 2: 2}), planSled("b", nil),
				},
			},
			want: []string{
				"copy b 01 <- a", "copy b 02 <- a",
				"copy c 01 <- a", "copy c 02 <- a",
			},
		},
		{
			name: "min 3 with the local sled holding it: 2 PUTs, copies to the rest",
			in: depot.PlanInput{
				Wanted: planHashes(1), Local: "s00", LocalHas: planSet(1), MinReplication: 3,
				Sleds: append([]depot.SledInventory{planSled("s00", map[int]int{1: 2})}, planEmpty(6)[1:]...),
			},
			check: func(t *testing.T, out []depot.Action) {
				puts, copies := depot.Summarize(out)
				if puts != 2 || copies != 3 {
					t.Fatalf("got %d PUTs and %d copies, want 2 and 3: %q", puts, copies, planLines(out))
				}
				all := append(planTargets(out, depot.ActionPut), planTargets(out, depot.ActionCopy)...)
				slices.Sort(all)
				if want := []string{"s01", "s02", "s03", "s04", "s05"}; !slices.Equal(all, want) {
					t.Fatalf("targets %q, want %q", all, want)
				}
				for _, a := range out {
					if a.Kind == depot.ActionCopy && a.Source != "s00" {
						t.Fatalf("%s: the only holder is s00", planLine(a))
					}
				}
			},
		},
		{
			name: "min 3 and nobody holds it: exactly 3 PUTs, no copies yet",
			in: depot.PlanInput{
				Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 3, Sleds: planEmpty(5),
			},
			check: func(t *testing.T, out []depot.Action) {
				if puts, copies := depot.Summarize(out); puts != 3 || copies != 0 {
					t.Fatalf("got %d PUTs and %d copies, want 3 and 0: %q", puts, copies, planLines(out))
				}
			},
		},
		{
			name: "quorum larger than the rack: a PUT to every sled",
			in: depot.PlanInput{
				Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 5, Sleds: planEmpty(2),
			},
			want: []string{"put s00 01", "put s01 01"},
		},
		{
			name: "nobody holds it and the coordinator has no copy: nothing",
			in: depot.PlanInput{
				Wanted: planHashes(1), LocalHas: planSet(2), MinReplication: 2, Sleds: planEmpty(3),
			},
			want: nil,
		},
		{
			name: "the local sled lacking it is the first PUT target",
			in: depot.PlanInput{
				Wanted: planHashes(1), Local: "s03", LocalHas: planSet(1), MinReplication: 1, Sleds: planEmpty(6),
			},
			want: []string{"put s03 01"},
		},
		{
			name: "quorum met: copies only, from a holder",
			in: depot.PlanInput{
				Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 2,
				Sleds: []depot.SledInventory{
					planSled("a", map[int]int{1: 2}), planSled("b", map[int]int{1: 2}), planSled("c", nil),
				},
			},
			check: func(t *testing.T, out []depot.Action) {
				if len(out) != 1 || out[0].Sled != "c" || out[0].Kind != depot.ActionCopy ||
					(out[0].Source != "a" && out[0].Source != "b") {
					t.Fatalf("got %q, want one copy to c from a or b", planLines(out))
				}
			},
		},
		{
			name: "a sled that is not OK gets nothing and is never a source",
			in: depot.PlanInput{
				Wanted: planHashes(1, 2), LocalHas: planSet(3), MinReplication: 1,
				Sleds: []depot.SledInventory{
					planDown(planSled("a", map[int]int{1: 2})),
					planSled("b", map[int]int{2: 2}),
					planSled("c", nil),
				},
			},
			// Hash 1's only holder is down: nothing for it this activation.
			want: []string{"copy c 02 <- b"},
		},
		{
			name: "a sled that is not OK gets no PUT",
			in: depot.PlanInput{
				Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 2,
				Sleds: []depot.SledInventory{planDown(planSled("a", nil)), planSled("b", nil)},
			},
			want: []string{"put b 01"},
		},
		{
			name: "a partial holder re-copies from a full one",
			in: depot.PlanInput{
				Wanted: planHashes(1), MinReplication: 1,
				Sleds: []depot.SledInventory{
					planSled("a", map[int]int{1: 2}), planSled("b", map[int]int{1: 1}), planSled("c", map[int]int{1: 1}),
				},
			},
			want: []string{"recopy b 01 <- a", "recopy c 01 <- a"},
		},
		{
			name: "without a full holder, partial holders re-copy from each other",
			in: depot.PlanInput{
				Wanted: planHashes(1), MinReplication: 1,
				Sleds: []depot.SledInventory{planSled("b", map[int]int{1: 1}), planSled("c", map[int]int{1: 1})},
			},
			want: []string{"recopy b 01 <- c", "recopy c 01 <- b"},
		},
		{
			name: "a partial sole holder is not re-copied, and others copy from it",
			in: depot.PlanInput{
				Wanted: planHashes(1), MinReplication: 1,
				Sleds: []depot.SledInventory{planSled("a", map[int]int{1: 1}), planSled("b", nil)},
			},
			want: []string{"copy b 01 <- a"},
		},
		{
			name: "one copy on a one-mirror sled, or more copies than mirrors, is a full set",
			in: depot.PlanInput{
				Wanted: planHashes(1), MinReplication: 2,
				Sleds: []depot.SledInventory{
					planMirrors(planSled("a", map[int]int{1: 1}), 1), planSled("b", map[int]int{1: 3}),
				},
			},
			want: nil,
		},
		{
			name: "hashes that are not wanted never appear",
			in: depot.PlanInput{
				Wanted: planHashes(1), LocalHas: planSet(1, 9), MinReplication: 1,
				Sleds: []depot.SledInventory{
					planSled("a", map[int]int{1: 2, 9: 2}), planSled("b", map[int]int{9: 1}), planSled("c", nil),
				},
			},
			want: []string{"copy b 01 <- a", "copy c 01 <- a"},
		},
		{
			name: "a sled without a depot URL holds but is never a source",
			in: depot.PlanInput{
				Wanted: planHashes(1), MinReplication: 1,
				Sleds: []depot.SledInventory{
					planNoURL(planSled("a", map[int]int{1: 2})), planSled("b", map[int]int{1: 2}), planSled("c", nil),
				},
			},
			want: []string{"copy c 01 <- b"},
		},
		{
			name: "duplicate sleds and hashes count once; the first report wins",
			in: depot.PlanInput{
				Wanted: planHashes(1, 1), MinReplication: 1,
				Sleds: []depot.SledInventory{
					planSled("a", map[int]int{1: 2}), planSled("b", nil), planSled("a", nil), planDown(planSled("b", nil)),
				},
			},
			want: []string{"copy b 01 <- a"},
		},
		{
			name: "MaxRequests: PUTs take the budget before copies",
			in: depot.PlanInput{
				Wanted: planHashes(1, 2), LocalHas: planSet(2), MinReplication: 1,
				Limits: depot.PlanLimits{MaxRequests: 2},
				Sleds:  []depot.SledInventory{planSled("a", map[int]int{1: 2}), planSled("b", nil), planSled("c", nil)},
			},
			check: func(t *testing.T, out []depot.Action) {
				if puts, copies := depot.Summarize(out); puts != 1 || copies != 1 {
					t.Fatalf("got %d PUTs and %d copies, want 1 and 1: %q", puts, copies, planLines(out))
				}
			},
		},
		{
			name: "MaxPuts: the sleds the cap leaves without a PUT get copies",
			in: depot.PlanInput{
				Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 4,
				Limits: depot.PlanLimits{MaxPuts: 1},
				Sleds:  append([]depot.SledInventory{planSled("s00", map[int]int{1: 2})}, planEmpty(5)[1:]...),
			},
			check: func(t *testing.T, out []depot.Action) {
				if puts, copies := depot.Summarize(out); puts != 1 || copies != 3 {
					t.Fatalf("got %d PUTs and %d copies, want 1 and 3: %q", puts, copies, planLines(out))
				}
			},
		},
		{
			name: "MaxCopiesPerSled bounds copies and re-copies per target",
			in: depot.PlanInput{
				Wanted: planHashes(1, 2, 3, 4, 5), MinReplication: 1,
				Limits: depot.PlanLimits{MaxCopiesPerSled: 2},
				Sleds: []depot.SledInventory{
					planSled("a", map[int]int{1: 2, 2: 2, 3: 2, 4: 2, 5: 2}),
					planSled("b", map[int]int{1: 1, 2: 1, 3: 1}),
					planSled("c", nil),
				},
			},
			check: func(t *testing.T, out []depot.Action) {
				if got := planTargets(out, depot.ActionCopy); !slices.Equal(got, []string{"b", "b", "c", "c"}) {
					t.Fatalf("copy targets %q, want two to b and two to c: %q", got, planLines(out))
				}
			},
		},
		{
			name: "copies to sleds lacking an artifact come before re-copies",
			in: depot.PlanInput{
				Wanted: planHashes(1, 2), MinReplication: 1,
				Limits: depot.PlanLimits{MaxCopiesPerSled: 1},
				Sleds: []depot.SledInventory{
					planSled("a", map[int]int{1: 2, 2: 2}), planSled("b", map[int]int{1: 1}),
				},
			},
			want: []string{"copy b 02 <- a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Rand = rand.New(rand.NewPCG(1, 2))
			out := depot.Plan(in)
			planCheck(t, in, out)
			if tt.check != nil {
				tt.check(t, out)
			} else if got := planLines(out); !slices.Equal(got, tt.want) {
				t.Fatalf("plan\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPlan_NilRandIsSeededByGeneration(t *testing.T) {
	in := depot.PlanInput{Generation: 9, Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 3, Sleds: planEmpty(12)}
	a, b := depot.Plan(in), depot.Plan(in)
	if !slices.Equal(a, b) || len(a) != 3 {
		t.Fatalf("two plans with a nil Rand: %q and %q", planLines(a), planLines(b))
	}
}

func TestPlan_PutTargetsVaryWithTheSeed(t *testing.T) {
	in := depot.PlanInput{Wanted: planHashes(1), LocalHas: planSet(1), MinReplication: 3, Sleds: planEmpty(10)}
	chosen := map[depot.SledID]int{}
	for seed := range uint64(60) {
		in.Rand = rand.New(rand.NewPCG(seed, 0))
		for _, a := range depot.Plan(in) {
			chosen[a.Sled]++
		}
	}
	if len(chosen) != 10 {
		t.Fatalf("60 seeds chose PUT targets %v, want all 10 sleds chosen at some point", chosen)
	}
}

// TestPlan_CapsDoNotStarve replans a rack whose requests all fail, so the
// same work is pending every activation: with a tight cap, every hash and
// every sled must still get its turn.
func TestPlan_CapsDoNotStarve(t *testing.T) {
	const n = 40
	all := map[int]int{}
	var idx []int
	for i := 1; i <= n; i++ {
		all[i] = 2
		idx = append(idx, i)
	}
	tests := []struct {
		name string
		in   depot.PlanInput
		key  func(depot.Action) string
	}{
		{
			name: "hashes",
			in: depot.PlanInput{
				Wanted: planHashes(idx...), MinReplication: 1, Limits: depot.PlanLimits{MaxRequests: 3},
				Sleds: []depot.SledInventory{planSled("a", all), planSled("b", nil)},
			},
			key: func(a depot.Action) string { return a.Hash.String() },
		},
		{
			name: "sleds",
			in: depot.PlanInput{
				Wanted: planHashes(1), MinReplication: 1, Limits: depot.PlanLimits{MaxRequests: 3},
				Sleds: append(planEmpty(n), planSled("zz", map[int]int{1: 2})),
			},
			key: func(a depot.Action) string { return string(a.Sled) },
		},
		{
			name: "PUTs",
			in: depot.PlanInput{
				Wanted: planHashes(idx...), LocalHas: planSet(idx...), MinReplication: 2,
				Limits: depot.PlanLimits{MaxPuts: 3}, Sleds: planEmpty(3),
			},
			key: func(a depot.Action) string { return a.Hash.String() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Rand = rand.New(rand.NewPCG(7, 7))
			seen := map[string]int{}
			for range 200 {
				for _, a := range depot.Plan(in) {
					seen[tt.key(a)]++
				}
			}
			if len(seen) != n {
				t.Fatalf("200 activations served %d of %d, want every one", len(seen), n)
			}
		})
	}
}

func TestConverged(t *testing.T) {
	tests := []struct {
		name  string
		in    depot.PlanInput
		wants bool
	}{
		{"nothing wanted", depot.PlanInput{Sleds: planEmpty(2)}, true},
		{"nothing wanted, no sleds", depot.PlanInput{}, true},
		{"wanted but no OK sled", depot.PlanInput{
			Wanted: planHashes(1), Sleds: []depot.SledInventory{planDown(planSled("a", map[int]int{1: 2}))},
		}, false},
		{"every sled full", depot.PlanInput{
			Wanted: planHashes(1, 2),
			Sleds: []depot.SledInventory{
				planSled("a", map[int]int{1: 2, 2: 2}), planMirrors(planSled("b", map[int]int{1: 1, 2: 1}), 1),
			},
		}, true},
		{"a partial copy", depot.PlanInput{
			Wanted: planHashes(1),
			Sleds:  []depot.SledInventory{planSled("a", map[int]int{1: 2}), planSled("b", map[int]int{1: 1})},
		}, false},
		{"a missing artifact", depot.PlanInput{
			Wanted: planHashes(1, 2),
			Sleds:  []depot.SledInventory{planSled("a", map[int]int{1: 2, 2: 2}), planSled("b", map[int]int{1: 2})},
		}, false},
		{"sleds that are not OK are not looked at", depot.PlanInput{
			Wanted: planHashes(1),
			Sleds:  []depot.SledInventory{planSled("a", map[int]int{1: 2}), planDown(planSled("b", nil))},
		}, true},
		{"unwanted extras do not matter", depot.PlanInput{
			Wanted: planHashes(1),
			Sleds:  []depot.SledInventory{planSled("a", map[int]int{1: 2, 7: 1})},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := depot.Converged(tt.in); got != tt.wants {
				t.Fatalf("Converged = %v, want %v", got, tt.wants)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	out := []depot.Action{
		{Kind: depot.ActionPut}, {Kind: depot.ActionCopy}, {Kind: depot.ActionCopy, Recopy: true},
	}
	if puts, copies := depot.Summarize(out); puts != 1 || copies != 2 {
		t.Fatalf("Summarize = %d, %d, want 1, 2", puts, copies)
	}
	if puts, copies := depot.Summarize(nil); puts != 0 || copies != 0 {
		t.Fatalf("Summarize(nil) = %d, %d", puts, copies)
	}
}

// planView indexes a PlanInput the way the planner's contract reads it:
// the first report of each sled, the wanted set, and the OK holders.
type planView struct {
	in     depot.PlanInput
	sleds  map[depot.SledID]*depot.SledInventory
	wanted map[store.Digest]bool
	min    int
}

func newPlanView(in depot.PlanInput) *planView {
	v := &planView{
		in:     in,
		sleds:  map[depot.SledID]*depot.SledInventory{},
		wanted: map[store.Digest]bool{},
		min:    max(in.MinReplication, 1),
	}
	for i := range in.Sleds {
		if _, dup := v.sleds[in.Sleds[i].ID]; !dup {
			v.sleds[in.Sleds[i].ID] = &in.Sleds[i]
		}
	}
	for _, h := range in.Wanted {
		v.wanted[h] = true
	}
	return v
}

func (v *planView) ok(id depot.SledID) bool { s := v.sleds[id]; return s != nil && s.OK }

func (v *planView) copies(id depot.SledID, h store.Digest) int { return max(v.sleds[id].Have[h], 0) }

func (v *planView) full(id depot.SledID, h store.Digest) bool {
	return v.copies(id, h) >= max(v.sleds[id].Mirrors, 1)
}

// holders is the OK sleds holding h, sorted.
func (v *planView) holders(h store.Digest) []depot.SledID {
	var out []depot.SledID
	for id := range v.sleds {
		if v.ok(id) && v.copies(id, h) > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// sources is the holders of h other than not that have a depot URL.
func (v *planView) sources(h store.Digest, not depot.SledID) []depot.SledID {
	var out []depot.SledID
	for _, id := range v.holders(h) {
		if id != not && v.sleds[id].DepotURL != "" {
			out = append(out, id)
		}
	}
	return out
}

// planCheck asserts every property a plan must have whatever the input:
// it is sorted with one action per (sled, hash); it targets only OK sleds,
// only wanted hashes, never a full set; PUTs come from LocalHas to sleds
// lacking the artifact and never take it above the quorum; copies come from
// an OK current holder other than the target, re-copies from a full one if
// there is one; the caps hold; and when a cap does not bind, nothing it
// governs is left out.
func planCheck(t testing.TB, in depot.PlanInput, out []depot.Action) {
	t.Helper()
	v := newPlanView(in)
	lim := in.Limits
	bad := func(a depot.Action, format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: %s\nplan %q", planLine(a), fmt.Sprintf(format, args...), planLines(out))
	}

	puts := map[store.Digest]int{}
	copiesTo := map[depot.SledID]int{}
	planned := map[depot.SledID]map[store.Digest]depot.Action{}
	nputs := 0
	for i, a := range out {
		if i > 0 {
			p := out[i-1]
			if c := cmp.Or(cmp.Compare(p.Phase, a.Phase), cmp.Compare(p.Sled, a.Sled),
				strings.Compare(p.Hash.String(), a.Hash.String())); c >= 0 {
				bad(a, "not strictly after %s in (Phase, Sled, Hash) order", planLine(p))
			}
		}
		if planned[a.Sled] == nil {
			planned[a.Sled] = map[store.Digest]depot.Action{}
		}
		if _, dup := planned[a.Sled][a.Hash]; dup {
			bad(a, "second action for this sled and hash")
		}
		planned[a.Sled][a.Hash] = a
		if !v.wanted[a.Hash] {
			bad(a, "hash is not wanted")
		}
		if !v.ok(a.Sled) {
			bad(a, "target is unknown or not OK")
		}
		if v.full(a.Sled, a.Hash) {
			bad(a, "target already holds a full set")
		}
		switch a.Kind {
		case depot.ActionPut:
			if a.Phase != depot.PhasePut || a.Source != "" || a.SourceURL != "" || a.Recopy {
				bad(a, "malformed PUT %+v", a)
			}
			if !in.LocalHas[a.Hash] {
				bad(a, "PUT of a hash the coordinator does not have")
			}
			if v.copies(a.Sled, a.Hash) != 0 {
				bad(a, "PUT to a sled that lists it")
			}
			puts[a.Hash]++
			nputs++
		case depot.ActionCopy:
			if a.Phase != depot.PhaseCopy {
				bad(a, "copy in phase %d", a.Phase)
			}
			if a.Source == a.Sled {
				bad(a, "copy from the target itself")
			}
			if !v.ok(a.Source) || v.copies(a.Source, a.Hash) == 0 {
				bad(a, "source is not an OK current holder")
			}
			if a.SourceURL == "" || a.SourceURL != v.sleds[a.Source].DepotURL {
				bad(a, "SourceURL %q is not the source's DepotURL", a.SourceURL)
			}
			if a.Recopy != (v.copies(a.Sled, a.Hash) > 0) {
				bad(a, "Recopy = %v, but the target lists %d copies", a.Recopy, v.copies(a.Sled, a.Hash))
			}
			if a.Recopy && !v.full(a.Source, a.Hash) {
				for _, s := range v.sources(a.Hash, a.Sled) {
					if v.full(s, a.Hash) {
						bad(a, "re-copy from a partial holder while %s holds a full set", s)
					}
				}
			}
			copiesTo[a.Sled]++
		default:
			bad(a, "unknown kind %q (the planner never deletes)", a.Kind)
		}
	}
	for h, n := range puts {
		if held := len(v.holders(h)); held+n > v.min {
			t.Fatalf("hash %s: %d holders + %d PUTs exceed the quorum %d\nplan %q",
				h.String()[:2], held, n, v.min, planLines(out))
		}
	}

	// Caps.
	capped := func(limit, n int) bool { return limit > 0 && n >= limit }
	if lim.MaxRequests > 0 && len(out) > lim.MaxRequests {
		t.Fatalf("%d actions, MaxRequests %d", len(out), lim.MaxRequests)
	}
	if lim.MaxPuts > 0 && nputs > lim.MaxPuts {
		t.Fatalf("%d PUTs, MaxPuts %d", nputs, lim.MaxPuts)
	}
	for id, n := range copiesTo {
		if lim.MaxCopiesPerSled > 0 && n > lim.MaxCopiesPerSled {
			t.Fatalf("%d copies to %s, MaxCopiesPerSled %d", n, id, lim.MaxCopiesPerSled)
		}
	}

	// Completeness: what no cap stopped was planned.
	if capped(lim.MaxRequests, len(out)) {
		return
	}
	if depot.Converged(in) && len(out) != 0 {
		t.Fatalf("a converged rack got actions: %q", planLines(out))
	}
	for h := range v.wanted {
		held := len(v.holders(h))
		lacking := 0
		for id := range v.sleds {
			if v.ok(id) && v.copies(id, h) == 0 {
				lacking++
			}
		}
		if in.LocalHas[h] && !capped(lim.MaxPuts, nputs) {
			if want := min(max(v.min-held, 0), lacking); puts[h] != want {
				t.Fatalf("hash %s: %d PUTs, want %d (holders %d, quorum %d, lacking %d)\nplan %q",
					h.String()[:2], puts[h], want, held, v.min, lacking, planLines(out))
			}
		}
		for id := range v.sleds {
			if !v.ok(id) || v.full(id, h) || capped(lim.MaxCopiesPerSled, copiesTo[id]) {
				continue
			}
			if _, ok := planned[id][h]; !ok && len(v.sources(h, id)) > 0 {
				t.Fatalf("sled %s, hash %s: nothing planned, though no cap binds and %v can serve it\nplan %q",
					id, h.String()[:2], v.sources(h, id), planLines(out))
			}
		}
	}
}

// planRandomInput is a random rack: 1-32 sleds with 1-3 mirrors (now and
// then 0), random holdings including partial copies, more copies than
// mirrors and unwanted artifacts, random OK flags and depot URLs, a random
// quorum of 1-5 and random caps (0 = unlimited, half the time each).
func planRandomInput(rng *rand.Rand) depot.PlanInput {
	nw := rng.IntN(12)
	var wanted []store.Digest
	for i := 1; i <= nw; i++ {
		wanted = append(wanted, planHash(i))
	}
	junk := planHashes(200, 201, 202)
	all := append(slices.Clone(wanted), junk...)
	localHas := map[store.Digest]bool{}
	for _, h := range all {
		if rng.IntN(10) < 7 {
			localHas[h] = true
		}
	}
	sleds := make([]depot.SledInventory, 1+rng.IntN(32))
	for i := range sleds {
		s := planSled(fmt.Sprintf("s%02d", i), nil)
		s.Mirrors = []int{0, 1, 2, 2, 2, 3}[rng.IntN(6)]
		s.OK = rng.IntN(100) < 85
		if rng.IntN(10) == 0 {
			s.DepotURL = ""
		}
		for _, h := range all {
			switch r := rng.IntN(100); {
			case r < 40:
			case r < 75:
				s.Have[h] = max(s.Mirrors, 1)
			case r < 95:
				s.Have[h] = 1 + rng.IntN(max(s.Mirrors, 1))
			case r < 97:
				s.Have[h] = s.Mirrors + 1
			default:
				s.Have[h] = 0 // listed with no copies: absent
			}
		}
		sleds[i] = s
	}
	capOf := func() int {
		if rng.IntN(2) == 0 {
			return 0
		}
		return 1 + rng.IntN(10)
	}
	in := depot.PlanInput{
		Generation:     rng.Uint64(),
		Wanted:         wanted,
		LocalHas:       localHas,
		Sleds:          sleds,
		MinReplication: 1 + rng.IntN(5),
		Limits:         depot.PlanLimits{MaxRequests: capOf(), MaxPuts: capOf(), MaxCopiesPerSled: capOf()},
	}
	if r := rng.IntN(3); r > 0 {
		in.Local = sleds[rng.IntN(len(sleds))].ID
	}
	return in
}

func TestPlan_PropertiesOverRandomRacks(t *testing.T) {
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 0x70726f70))
		in := planRandomInput(rng)
		plan := func(in depot.PlanInput) []depot.Action {
			in.Rand = rand.New(rand.NewPCG(seed, 1))
			return depot.Plan(in)
		}
		out := plan(in)
		planCheck(t, in, out)
		if again := plan(in); !slices.Equal(out, again) {
			t.Fatalf("seed %d: the same seed planned %q, then %q", seed, planLines(out), planLines(again))
		}
		// Neither the order of the sleds nor that of the wanted set
		// changes the plan.
		shuffled := in
		shuffled.Sleds = slices.Clone(in.Sleds)
		shuffled.Wanted = slices.Clone(in.Wanted)
		rng.Shuffle(len(shuffled.Sleds), func(i, j int) {
			shuffled.Sleds[i], shuffled.Sleds[j] = shuffled.Sleds[j], shuffled.Sleds[i]
		})
		slices.Reverse(shuffled.Wanted)
		if again := plan(shuffled); !slices.Equal(out, again) {
			t.Fatalf("seed %d: reordered input planned %q, want %q", seed, planLines(again), planLines(out))
		}
	}
}

// The convergence simulation.
//
// planRack is a rack as it really is: each sled's holdings, mirrors and
// config (catalog, generation, set). The planner sees it only through
// collect, which, like the coordinator's collect step, reads every sled's
// config before writing any and marks a sled not OK while it is down.
// Configs change only through depot.CheckConfig, the sleds' own rule, and
// after every step each sled's reconciler deletes what its config does not
// list. apply executes a plan the way sleds would: a request carrying
// another generation than the sled's config is rejected, a failed request
// changes nothing, and a PUT or copy that succeeds leaves a full set.
//
// With planWeather.stale, two more coordinators act in every activation,
// after A's collect: B, with a catalog of its own at A's generation + 1
// and another wanted set (the case that once emptied racks), and A', of
// A's own catalog one generation behind with an older set. Each writes
// its config and sends its plan's requests; with blind they write without
// reading first (an older coordinator, or a script). Neither may ever
// change a config, land a request, or make a reconciler delete anything A
// wants.
//
// The bound. Call an activation clean when every sled lists OK, no request
// fails and no sled joins; F is the number of the others. Start from D
// missing or partial (sled, wanted hash) pairs, the worst sled missing
// Dmax, U = sum over hashes in LocalHas of max(0, quorum - holders) PUTs
// still owed, and let every sled that joins add W (the wanted count) to D
// and raise Dmax to at least W. Assume what the simulation guarantees:
// every wanted hash is in LocalHas or held by some sled, and a partial copy
// on a lone sled never happens (the sled's own scrub repairs that, not the
// planner). Then, with R, P, C the caps (a term is 0 for an unlimited cap),
//
//	activations <= F + D/R + U/P + 2*(Dmax/C) + 2     (integer division)
//
// Proof. Nothing ever shrinks a holding, so D and each sled's deficit only
// fall, except by joins, and hash holders only grow. A clean activation
// falls into one of three classes. (R) It plans R actions: all succeed,
// each on a different pair, so D falls by R; at most D/R of these. (P) It
// plans P PUTs: all succeed, and a PUT is planned only while holders are
// below the quorum, each adding a holder, so over the run at most U PUTs
// are planned in clean activations; at most U/P of these. (X) Neither R nor
// P binds: then every hash in LocalHas without holders gets its PUTs, and
// every sled not saturated at C copies gets every copy and re-copy that has
// a source. A sled saturated in a clean activation loses C of its deficit,
// so it is saturated in at most m = Dmax/C of them. Call an (X) activation
// good for sled s when s is not saturated and some other sled is not
// either: s gets all it can get, a hash with no holder gets one, and a hash
// s holds alone on a partial set reaches the unsaturated other sled. After
// a good activation everything s still lacks has a source, so the next (X)
// activation in which s is not saturated finishes s. The (X) activations
// that are not good for s number at most 2m (s saturated, or a given other
// sled saturated), so s is done after at most 2m+2 of them; and that holds
// for every sled at once. With unlimited caps it reads: two clean
// activations converge any rack, whatever happened before.

type planSimSled struct {
	id      depot.SledID
	mirrors int
	have    map[store.Digest]int
	cfg     *depot.Config // nil while unmanaged
	downTo  int           // the sled is unreachable in activations before this one
}

type planRack struct {
	t       testing.TB
	rng     *rand.Rand // faults and joins
	sleds   []*planSimSled
	wanted  []store.Digest
	local   map[store.Digest]bool
	min     int
	catalog string // A's catalog id
	gen     uint64
}

const (
	planCatalogA = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
	planCatalogB = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
)

// config is A's config now.
func (r *planRack) config() depot.Config {
	return depot.Config{CatalogID: r.catalog, Generation: r.gen, Artifacts: slices.Clone(r.wanted)}
}

// up reports whether s answers in activation act.
func up(s *planSimSled, act int) bool { return act >= s.downTo }

// setConfig is PUT /artifacts-config on s: the sled's own rule decides.
func (r *planRack) setConfig(s *planSimSled, next depot.Config) error {
	change, err := depot.CheckConfig(s.cfg, next)
	if err == nil && change {
		s.cfg = &next
	}
	return err
}

// collect is the coordinator's collect step in activation act for the
// config ours: it reads the config of every sled that answers and judges
// it with the sleds' rule; with no conflict it writes ours to each, then
// lists. It returns the inventory (sleds that did not answer are not OK),
// how many sleds it wrote to and how many took the config. With blind, it
// writes without reading.
func (r *planRack) collect(act int, ours depot.Config, blind bool) (inv []depot.SledInventory, wrote, accepted int) {
	if !blind {
		for _, s := range r.sleds {
			if !up(s, act) {
				continue
			}
			if _, err := depot.CheckConfig(s.cfg, ours); err != nil {
				return r.list(func(*planSimSled) bool { return false }), 0, 0
			}
		}
	}
	for _, s := range r.sleds {
		if !up(s, act) {
			continue
		}
		wrote++
		if r.setConfig(s, ours) == nil {
			accepted++
		}
	}
	r.reconcile()
	return r.list(func(s *planSimSled) bool { return up(s, act) }), wrote, accepted
}

// reconcile is every sled's delete reconciler: what the sled's config
// does not list goes. It fails the test if that is anything A wants.
func (r *planRack) reconcile() {
	r.t.Helper()
	for _, s := range r.sleds {
		if s.cfg == nil {
			continue
		}
		for h := range s.have {
			if slices.Contains(s.cfg.Artifacts, h) {
				continue
			}
			if slices.Contains(r.wanted, h) {
				r.t.Fatalf("sled %s (config %s at %d) deleted %s, which catalog %s wants",
					s.id, s.cfg.CatalogID, s.cfg.Generation, h.String()[:2], r.catalog)
			}
			delete(s.have, h)
		}
	}
}

// list reports every sled as it is, OK where ok says so.
func (r *planRack) list(ok func(*planSimSled) bool) []depot.SledInventory {
	out := make([]depot.SledInventory, len(r.sleds))
	for i, s := range r.sleds {
		out[i] = depot.SledInventory{
			ID: s.id, DepotURL: "http://" + string(s.id) + ":12348", Mirrors: s.mirrors,
			Have: maps.Clone(s.have), OK: ok(s),
		}
	}
	return out
}

func (r *planRack) input(inv []depot.SledInventory, rnd *rand.Rand, limits depot.PlanLimits) depot.PlanInput {
	return depot.PlanInput{
		Generation: r.gen, Wanted: r.wanted, Local: r.sleds[0].id, LocalHas: r.local,
		Sleds: inv, MinReplication: r.min, Limits: limits, Rand: rnd,
	}
}

// converged is Converged over the whole rack, every sled listed OK.
func (r *planRack) converged() bool {
	all := r.list(func(*planSimSled) bool { return true })
	return depot.Converged(r.input(all, nil, depot.PlanLimits{}))
}

// apply executes actions sent with generation gen; each fails with
// probability failRate. It returns how many changed the rack, and checks
// that none took anything away.
func (r *planRack) apply(gen uint64, actions []depot.Action, failRate float64) (applied int) {
	r.t.Helper()
	before := r.snapshot()
	byID := map[depot.SledID]*planSimSled{}
	for _, s := range r.sleds {
		byID[s.id] = s
	}
	for _, a := range actions {
		s := byID[a.Sled]
		if s == nil {
			r.t.Fatalf("%s: no such sled", planLine(a))
		}
		if s.cfg == nil || gen != s.cfg.Generation {
			continue // 409 GENERATION: a stale coordinator's request
		}
		if r.rng.Float64() < failRate {
			continue
		}
		if a.Kind == depot.ActionCopy {
			if src := byID[a.Source]; src == nil || src.have[a.Hash] == 0 {
				r.t.Fatalf("%s: the source does not hold it", planLine(a))
			}
		}
		s.have[a.Hash] = max(s.have[a.Hash], s.mirrors)
		applied++
	}
	after := r.snapshot()
	for k, n := range before {
		if after[k] < n {
			r.t.Fatalf("sled %s lost copies of %s: %d -> %d", k.sled, k.hash.String()[:2], n, after[k])
		}
	}
	return applied
}

type planSimKey struct {
	sled depot.SledID
	hash store.Digest
}

// configs is each sled's config, printed, for comparisons.
func (r *planRack) configs() map[depot.SledID]string {
	out := map[depot.SledID]string{}
	for _, s := range r.sleds {
		out[s.id] = fmt.Sprint(s.cfg)
		if s.cfg != nil {
			out[s.id] = fmt.Sprint(*s.cfg)
		}
	}
	return out
}

func (r *planRack) snapshot() map[planSimKey]int {
	out := map[planSimKey]int{}
	for _, s := range r.sleds {
		for h, n := range s.have {
			out[planSimKey{s.id, h}] = n
		}
	}
	return out
}

// deficit is D (missing or partial wanted pairs) and Dmax (the worst sled).
func (r *planRack) deficit() (total, worst int) {
	for _, s := range r.sleds {
		d := 0
		for _, h := range r.wanted {
			if s.have[h] < s.mirrors {
				d++
			}
		}
		total += d
		worst = max(worst, d)
	}
	return total, worst
}

// putsOwed is U: the PUTs still owed to reach the quorum.
func (r *planRack) putsOwed() int {
	u := 0
	for _, h := range r.wanted {
		held := 0
		for _, s := range r.sleds {
			if s.have[h] > 0 {
				held++
			}
		}
		if r.local[h] {
			u += max(r.min-held, 0)
		}
	}
	return u
}

// newPlanRack builds a random rack of 1..maxSleds sleds: wanted hashes,
// some held fully or partially, some in LocalHas; a hash outside LocalHas
// is held by some sled, and partial copies only appear with two sleds or
// more (see the bound's assumptions). Sleds also hold unwanted junk.
func newPlanRack(t testing.TB, rng *rand.Rand, maxSleds int) *planRack {
	r := &planRack{t: t, rng: rng, min: 1 + rng.IntN(5), catalog: planCatalogA, gen: 7, local: map[store.Digest]bool{}}
	for i := range 1 + rng.IntN(10) {
		r.wanted = append(r.wanted, planHash(i+1))
	}
	n := 1 + rng.IntN(maxSleds)
	for i := range n {
		s := &planSimSled{id: depot.SledID(fmt.Sprintf("s%02d", i)), mirrors: 1 + rng.IntN(3), have: map[store.Digest]int{}}
		cfg := r.config()
		s.cfg = &cfg
		for _, h := range r.wanted {
			switch x := rng.IntN(10); {
			case x < 3:
				s.have[h] = s.mirrors
			case x < 4 && n > 1:
				s.have[h] = 1 + rng.IntN(s.mirrors)
			}
		}
		if rng.IntN(3) == 0 {
			s.have[planHash(250)] = 1
		}
		r.sleds = append(r.sleds, s)
	}
	for _, h := range r.wanted {
		if rng.IntN(10) < 8 {
			r.local[h] = true
			continue
		}
		held := false
		for _, s := range r.sleds {
			held = held || s.have[h] > 0
		}
		if !held {
			s := r.sleds[rng.IntN(n)]
			s.have[h] = s.mirrors
		}
	}
	return r
}

// planWeather is what happens to a simulated rack. In each of the first 20
// activations a storm comes with probability storm: then each request fails
// with probability fail, each sled is unreachable for 1-3 activations with
// probability down, an empty (unmanaged) sled joins with probability join,
// and A's generation moves on (same set) with probability bump, so a sled
// that was down lags behind. With stale, coordinators B and A' (see
// planRack) write configs and plan every activation too, reading first
// unless blind.
type planWeather struct {
	storm, fail, down, join, bump float64
	stale, blind                  bool
}

// planRun is the outcome of one simulated rack.
type planRun struct {
	activations int // plans executed until the whole rack converged
	bound       int // the proven bound for this run
	disturbed   int // F: activations that were not clean
}

// run replans and executes until the whole rack converges, checking every
// plan with planCheck, and computes the bound from the starting rack, the
// caps, the joins and the disturbed activations.
func (r *planRack) run(seed uint64, limits depot.PlanLimits, w planWeather) planRun {
	r.t.Helper()
	d0, dmax0 := r.deficit()
	u := r.putsOwed()
	planRnd := rand.New(rand.NewPCG(seed, 1))
	staleRnd := rand.New(rand.NewPCG(seed, 2))

	var res planRun
	joins := 0
	for act := 0; !r.converged(); act++ {
		if act == 1000 {
			r.t.Fatalf("seed %d: not converged after 1000 activations", seed)
		}
		stormy := act < 20 && r.rng.Float64() < w.storm
		if stormy {
			for _, s := range r.sleds {
				if r.rng.Float64() < w.down {
					s.downTo = act + 1 + r.rng.IntN(3)
				}
			}
			if len(r.sleds) < 32 && r.rng.Float64() < w.join {
				r.sleds = append(r.sleds, &planSimSled{
					id:      depot.SledID(fmt.Sprintf("s%02d", len(r.sleds))),
					mirrors: 1 + r.rng.IntN(3), have: map[store.Digest]int{},
				})
				joins++
			}
		}
		if stormy && r.rng.Float64() < w.bump {
			r.gen++
		}
		inv, wrote, accepted := r.collect(act, r.config(), false)
		if accepted != wrote {
			r.t.Fatalf("seed %d: A found a sled driven by another coordinator", seed)
		}
		clean := !stormy
		for _, s := range inv {
			clean = clean && s.OK
		}
		if !clean {
			res.disturbed++
		}

		in := r.input(inv, planRnd, limits)
		actions := depot.Plan(in)
		planCheck(r.t, in, actions)

		fail := 0.0
		if stormy {
			fail = w.fail
		}
		r.apply(r.gen, actions, fail)
		r.reconcile()
		res.activations++

		if w.stale {
			other := append(slices.Clone(r.wanted[:len(r.wanted)-1]), planHash(240))
			for _, c := range []depot.Config{
				{CatalogID: planCatalogB, Generation: r.gen + 1, Artifacts: other},
				{CatalogID: r.catalog, Generation: r.gen - 1, Artifacts: other},
			} {
				before := r.configs()
				_, wrote, accepted := r.collect(act, c, w.blind)
				switch {
				case wrote > 0 && !w.blind:
					r.t.Fatalf("seed %d: coordinator %s at %d found nothing to stop it", seed, c.CatalogID[:2], c.Generation)
				case accepted != 0 || !maps.Equal(before, r.configs()):
					r.t.Fatalf("seed %d: %d sleds took the config of %s at %d", seed, accepted, c.CatalogID[:2], c.Generation)
				}
				if !w.blind {
					continue // it stopped: no plan, no requests
				}
				in := r.input(r.list(func(s *planSimSled) bool { return up(s, act) }), staleRnd, limits)
				in.Generation, in.Wanted = c.Generation, c.Artifacts
				in.LocalHas = maps.Clone(r.local)
				in.LocalHas[planHash(240)] = true
				if n := r.apply(c.Generation, depot.Plan(in), 0); n != 0 {
					r.t.Fatalf("seed %d: %d requests of coordinator %s at %d took effect", seed, n, c.CatalogID[:2], c.Generation)
				}
				r.reconcile()
			}
		}
	}

	per := func(n, limit int) int {
		if limit <= 0 {
			return 0
		}
		return n / limit
	}
	nw := len(r.wanted)
	d, dmax := d0+joins*nw, dmax0
	if joins > 0 {
		dmax = max(dmax, nw)
	}
	res.bound = res.disturbed + per(d, limits.MaxRequests) + per(u, limits.MaxPuts) +
		2*per(dmax, limits.MaxCopiesPerSled) + 2
	return res
}

func TestPlan_RackConverges(t *testing.T) {
	unlimited := func(*rand.Rand) depot.PlanLimits { return depot.PlanLimits{} }
	from8 := func(rng *rand.Rand) depot.PlanLimits {
		c := func() int {
			if rng.IntN(4) == 0 {
				return 0
			}
			return 8 + rng.IntN(9)
		}
		return depot.PlanLimits{MaxRequests: c(), MaxPuts: c(), MaxCopiesPerSled: c()}
	}
	all8 := func(*rand.Rand) depot.PlanLimits {
		return depot.PlanLimits{MaxRequests: 8, MaxPuts: 8, MaxCopiesPerSled: 8}
	}
	storms := planWeather{storm: 0.5, fail: 0.2, down: 0.1, join: 0.2, bump: 0.3, stale: true}
	blind := planWeather{storm: 0.5, fail: 0.2, down: 0.1, join: 0.2, bump: 0.3, stale: true, blind: true}
	tests := []struct {
		name    string
		limits  func(*rand.Rand) depot.PlanLimits // caps 0 or from 8 up
		weather planWeather
	}{
		{"clean, unlimited", unlimited, planWeather{}},
		{"clean, caps from 8", from8, planWeather{}},
		{"clean, all caps 8", all8, planWeather{}},
		{"20% of requests fail", from8, planWeather{storm: 0.5, fail: 0.2}},
		{"sleds drop out and come back", from8, planWeather{storm: 0.4, down: 0.1}},
		{"sleds join empty", from8, planWeather{storm: 0.4, join: 0.3}},
		{"three coordinators", from8, planWeather{stale: true}},
		{"sleds lag behind a stray catalog", from8, planWeather{storm: 0.5, down: 0.2, bump: 0.5, stale: true}},
		{"stray coordinators write blind", from8, planWeather{storm: 0.5, down: 0.2, bump: 0.5, stale: true, blind: true}},
		{"everything at once, unlimited", unlimited, storms},
		{"everything at once, all caps 8", all8, storms},
		{"everything at once, blind strays", all8, blind},
	}
	const racks = 40
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			most, margin := 0, math.MaxInt
			for seed := range uint64(racks) {
				rng := rand.New(rand.NewPCG(seed, 0x7261636b))
				r := newPlanRack(t, rng, 32)
				limits := tt.limits(rng)
				res := r.run(seed, limits, tt.weather)
				if res.activations > res.bound {
					t.Fatalf("seed %d: converged after %d activations, bound %d (%d disturbed, limits %+v)",
						seed, res.activations, res.bound, res.disturbed, limits)
				}
				most, margin = max(most, res.activations), min(margin, res.bound-res.activations)
			}
			t.Logf("%d racks: at most %d activations; tightest margin under the bound: %d", racks, most, margin)
		})
	}
}
