package depot

import (
	"context"
	"fmt"
	"sync"
	"time"
)

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
				if err == nil {
					r.gained(string(a.Sled), a.Hash)
				}
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
