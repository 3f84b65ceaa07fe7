// Package stall notices transfers that stop moving: a Watchdog that fires
// once no progress was reported for a while, and a Reader and Writer that
// report every chunk that moves. It imports only the standard library, so
// the client and the CLI use it without linking the rest of depot.
package stall

import (
	"io"
	"sync"
	"time"
)

// Watchdog calls its fire function once when Progress has not been called
// for its timeout. Safe for concurrent use (an HTTP transport reads a
// request body while the caller may already read the response).
type Watchdog struct {
	mu    sync.Mutex
	d     time.Duration
	timer *time.Timer // nil when disabled
}

// New starts a Watchdog that calls fire after d without progress; d <= 0
// disables it (it never fires).
func New(d time.Duration, fire func()) *Watchdog {
	w := &Watchdog{d: d}
	if d > 0 {
		w.timer = time.AfterFunc(d, fire)
	}
	return w
}

// Progress re-arms the watchdog for another full timeout.
func (w *Watchdog) Progress() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.timer.Reset(w.d)
	w.mu.Unlock()
}

// Stop disarms the watchdog; fire is not called after Stop returns unless
// it had already started.
func (w *Watchdog) Stop() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

// Reader passes reads through to R and reports each read that moved bytes
// to Progress, and the end of R (io.EOF) to EOF if it is set.
type Reader struct {
	R        io.Reader
	Progress func(n int)
	EOF      func()
}

func (r *Reader) Read(b []byte) (int, error) {
	n, err := r.R.Read(b)
	if n > 0 {
		r.Progress(n)
	}
	if err == io.EOF && r.EOF != nil {
		r.EOF()
	}
	return n, err
}

// Writer passes writes through to W and reports each write that moved
// bytes to Progress.
type Writer struct {
	W        io.Writer
	Progress func(n int)
}

func (w *Writer) Write(b []byte) (int, error) {
	n, err := w.W.Write(b)
	if n > 0 {
		w.Progress(n)
	}
	return n, err
}
