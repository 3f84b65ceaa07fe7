package depot

import "context"

// WriteSlots bounds the writes into a sled's store that run at once:
// artifact PUTs, copies and repository uploads share one set of slots, so
// that no mix of them can hold more files, buffers and disk bandwidth than
// the operator allowed. A write that finds no free slot is refused at once
// (ErrServerBusy) rather than queued. Safe for concurrent use; a nil
// *WriteSlots has no bound.
type WriteSlots struct{ ch chan struct{} }

// NewWriteSlots returns n slots; n <= 0 means no bound (nil).
func NewWriteSlots(n int) *WriteSlots {
	if n <= 0 {
		return nil
	}
	return &WriteSlots{ch: make(chan struct{}, n)}
}

// TryAcquire takes a slot if one is free. Every true must be paired with
// one Release.
func (w *WriteSlots) TryAcquire() bool {
	if w == nil {
		return true
	}
	select {
	case w.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// Acquire waits for a slot until ctx is done (then ctx's error). Every nil
// must be paired with one Release.
func (w *WriteSlots) Acquire(ctx context.Context) error {
	if w == nil {
		return nil
	}
	select {
	case w.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release returns a slot taken by TryAcquire or Acquire.
func (w *WriteSlots) Release() {
	if w != nil {
		<-w.ch
	}
}

// InUse returns the slots taken now, and Cap their number (0: no bound).
func (w *WriteSlots) InUse() int {
	if w == nil {
		return 0
	}
	return len(w.ch)
}

// Cap returns the number of slots (0: no bound).
func (w *WriteSlots) Cap() int {
	if w == nil {
		return 0
	}
	return cap(w.ch)
}
