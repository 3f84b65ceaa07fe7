package depot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"depot/store"
)

// Conflicts collect reports on a sled (SledState.Conflict), named like the
// error codes a sled answers a refused config with.
const (
	// ConflictCatalog: the sled serves another catalog (or its config
	// names none and differs from this catalog's).
	ConflictCatalog = "CATALOG_MISMATCH"
	// ConflictGeneration: the sled is at a higher generation of this
	// catalog, or at this generation with another set.
	ConflictGeneration = "CONFIG_GENERATION"
)

// probe is what collect learned of one sled before writing anything.
type probe struct {
	ok  bool    // Info and GetConfig answered
	cur *Config // the sled's config; nil while it is unmanaged
}

// collect learns every member sled's config (catalog id, generation)
// before writing any. A sled that serves another catalog, or this one at
// a higher generation, means another coordinator drives the rack: then
// this activation writes to no sled, says so per sled and in its error,
// and lists only the sleds that still serve this catalog (or none), so
// progress stays fresh. Otherwise it puts ours on every sled that
// answered, then lists it. Calls run concurrently across sleds; a refusal
// that races in at the write stops the activation too.
//
// observe (a coordinator that does not lead) only reads: no judging, no
// writes, just what each sled holds, so progress on this coordinator
// stays fresh.
func (r *Replicator) collect(ctx context.Context, ours Config, members []member, act *Activation, observe bool) ([]SledInventory, error) {
	invs := make([]SledInventory, len(members))
	probes := make([]probe, len(members))
	call := func(m member, op string, fn func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		defer cancel()
		start := time.Now()
		err := fn(cctx)
		r.record(act, RequestRecord{Sled: m.rec.ID, Op: op, Generation: ours.Generation}, start, err)
		return err
	}
	each := func(fn func(i int, m member)) {
		var wg sync.WaitGroup
		for i, m := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(i, m)
			}()
		}
		wg.Wait()
	}

	// Read: status and config of every sled.
	each(func(i int, m member) {
		invs[i] = SledInventory{ID: SledID(m.rec.ID)}
		ictx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		info, err := m.client.Info(ictx)
		cancel()
		if err != nil {
			r.sledError(m.rec, fmt.Errorf("status: %w", err))
			return
		}
		// The depot URL comes from the registry, never from what the sled
		// says about itself: a sled that lies would point its peers'
		// copies anywhere. Without one it is no copy source. The local
		// sled's is this daemon's own setting.
		invs[i].DepotURL, invs[i].Mirrors = m.rec.DepotURL, info.Mirrors
		if m.local && invs[i].DepotURL == "" {
			invs[i].DepotURL = info.DepotURL
		}
		var cfg Config
		unmanaged := false
		err = call(m, OpGetConfig, func(ctx context.Context) (err error) {
			cfg, err = m.client.GetConfig(ctx)
			if errors.Is(err, ErrNoConfig) {
				unmanaged = true
				return nil
			}
			return err
		})
		if err != nil {
			r.sledError(m.rec, fmt.Errorf("get config: %w", err))
			return
		}
		if !unmanaged {
			probes[i].cur = &cfg
		}
		probes[i].ok = true
	})

	// Judge, with the sleds' own rule.
	var conflicts []string
	mismatch := false
	for i, m := range members {
		if !probes[i].ok || observe {
			continue
		}
		err := judge(probes[i].cur, ours)
		code := conflictCode(err)
		mismatch = mismatch || code == ConflictCatalog
		r.sledConfig(m.rec, probes[i].cur, code, err)
		if err != nil {
			conflicts = append(conflicts, fmt.Sprintf("sled %s: %v", m.rec.ID, err))
			r.log.Error("sled is driven by another coordinator; this activation writes to no sled",
				"sled", m.rec.ID, "conflict", code, "catalog_id", ours.CatalogID, "generation", ours.Generation, "err", err)
		}
	}
	stopped := len(conflicts) > 0
	write := !stopped && ours.Generation > 0 && !observe

	// Write (unless stopped), then list.
	var mu sync.Mutex // guards conflicts and mismatch from here on
	each(func(i int, m member) {
		if !probes[i].ok {
			return
		}
		cur := probes[i].cur
		if stopped && cur != nil && cur.CatalogID != ours.CatalogID {
			return // not ours to count
		}
		if write {
			err := call(m, OpPutConfig, func(ctx context.Context) error { return m.client.PutConfig(ctx, ours) })
			if err != nil {
				r.sledError(m.rec, fmt.Errorf("put config: %w", err))
				if code := conflictCode(err); code != "" {
					r.sledConfig(m.rec, cur, code, err)
					mu.Lock()
					conflicts = append(conflicts, fmt.Sprintf("sled %s: %v", m.rec.ID, err))
					mismatch = mismatch || code == ConflictCatalog
					mu.Unlock()
				}
				return
			}
			r.sledConfig(m.rec, &ours, "", nil)
		}
		var have map[store.Digest]int
		if err := call(m, OpList, func(ctx context.Context) (err error) {
			have, err = m.client.List(ctx)
			return err
		}); err != nil {
			r.sledError(m.rec, fmt.Errorf("list: %w", err))
			return
		}
		invs[i].Have, invs[i].OK = have, true
		r.sledSeen(m.rec, invs[i], ours)
	})
	if len(conflicts) == 0 {
		return invs, nil
	}
	what := "another coordinator is ahead (a sled is at a higher generation of this catalog)"
	if mismatch {
		what = "a sled serves another catalog (" + ConflictCatalog + ")"
	}
	done := "wrote to no sled"
	if write {
		done = "was refused at the write"
	}
	const show = 3
	more := ""
	if len(conflicts) > show {
		more = fmt.Sprintf("; and %d more", len(conflicts)-show)
		conflicts = conflicts[:show]
	}
	return invs, fmt.Errorf("%s, so this activation (catalog %s, generation %d) %s: %s%s",
		what, ours.CatalogID, ours.Generation, done, strings.Join(conflicts, "; "), more)
}

// judge is CheckConfig from the coordinator's side: may ours be written to
// a sled whose config is cur? A catalog at generation 0 writes nothing, so
// a sled of its own at generation 0 (just adopted) is no conflict.
func judge(cur *Config, ours Config) error {
	if cur != nil && ours.Generation == 0 && cur.Generation == 0 && cur.CatalogID == ours.CatalogID {
		return nil
	}
	_, err := CheckConfig(cur, ours)
	return err
}

func conflictCode(err error) string {
	switch {
	case errors.Is(err, ErrCatalogMismatch):
		return ConflictCatalog
	case errors.Is(err, ErrConfigGeneration):
		return ConflictGeneration
	}
	return ""
}
