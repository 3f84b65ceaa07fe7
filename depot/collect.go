package depot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"depot/store"
)

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
			inv.DepotURL, inv.Mirrors = info.DepotURL, info.Mirrors
			if m.rec.DepotURL != "" {
				inv.DepotURL = m.rec.DepotURL
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
