package store

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Every item is flushed exactly once; flushes never overlap; each caller
// gets its own flush's error.
func TestBatcher_EachItemOnceNoOverlapOwnError(t *testing.T) {
	var b batcher[int]
	var running atomic.Int32
	var mu sync.Mutex
	seen := make(map[int]int)
	errOdd := errors.New("odd batch")
	var flushes atomic.Int32
	flush := func(vs []int) error {
		if running.Add(1) != 1 {
			t.Error("two flushes at once")
		}
		defer running.Add(-1)
		n := flushes.Add(1)
		mu.Lock()
		for _, v := range vs {
			seen[v]++
		}
		mu.Unlock()
		if n%2 == 1 {
			return errOdd
		}
		return nil
	}
	const writers, each = 16, 200
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.do(w*each+i, flush); err != nil {
					if !errors.Is(err, errOdd) {
						t.Errorf("err = %v", err)
					}
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Fatalf("%d items flushed, want %d", len(seen), writers*each)
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("item %d flushed %d times", v, n)
		}
	}
	if failed.Load() == 0 {
		t.Fatal("no caller saw its batch's error")
	}
	t.Logf("%d items in %d flushes", writers*each, flushes.Load())
}
