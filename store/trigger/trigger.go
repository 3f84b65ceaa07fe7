// Package trigger queues one more run of a background loop. Any number of
// Fire calls while a run is queued fold into that one run, and Fire never
// blocks, so callers on hot paths may fire freely.
package trigger

// Trigger is a queue of at most one pending run. Copies share the queue.
// Make it with New; it is safe for concurrent use.
type Trigger struct {
	c chan struct{}
}

// New returns a Trigger with nothing queued.
func New() Trigger {
	return Trigger{c: make(chan struct{}, 1)}
}

// Fire queues a run unless one is queued already.
func (t Trigger) Fire() {
	select {
	case t.c <- struct{}{}:
	default:
	}
}

// C yields one value per queued run; the loop receives from it.
func (t Trigger) C() <-chan struct{} { return t.c }
