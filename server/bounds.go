package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"depot/depot"
	"depot/server/api"
	"depot/server/transport"
)

// Defaults of the bounds in Config.
const (
	DefaultMaxConcurrentWrites  = 64
	DefaultMinBodyRate          = 64 << 10 // bytes per second
	DefaultMinBodyRateWindow    = 30 * time.Second
	DefaultDownloadStallTimeout = time.Minute
	// MaxHeaderBytes bounds a request's header block on every listener.
	MaxHeaderBytes = 64 << 10
)

// earnBytes is what a write must send before it may take a write slot (or
// its whole body, if shorter): a client that opens a PUT and then dribbles
// holds a connection until the body-rate check cuts it, but never a slot,
// so it cannot lock out the writers that do send.
const earnBytes = 16 << 10

// writeSlot bounds the writes into the store that run at once (artifact
// PUTs, repository uploads; copies take theirs in the sled service). A
// write first sends its first earnBytes, then takes a slot or is refused
// at once with 503 SERVER_BUSY and Retry-After.
func (s *Server) writeSlot(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		want := earnBytes
		if r.ContentLength >= 0 && r.ContentLength < int64(want) {
			want = int(r.ContentLength)
		}
		br := bufio.NewReaderSize(r.Body, earnBytes)
		if want > 0 {
			if got, err := br.Peek(want); err != nil && !errors.Is(err, io.EOF) {
				flag, _ := c.Get(ctxLimitFlag).(string)
				b := &bodyReader{flag: flag, n: int64(len(got)), err: err, stall: s.cfg.BodyStallTimeout}
				return b.explain(fmt.Errorf("read the first %d bytes of the body: %w", want, err))
			}
		}
		if !s.writes.TryAcquire() {
			return fmt.Errorf("%w: %d of %d in use", depot.ErrServerBusy, s.writes.InUse(), s.writes.Cap())
		}
		defer s.writes.Release()
		orig := r.Body
		r.Body = readCloser{br, r.Body}
		// net/http drains an unread body only through its own type;
		// leave it that type once the handler is done.
		defer func() { r.Body = orig }()
		return next(c)
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// errBodyTooSlow is the body-rate check's verdict.
var errBodyTooSlow = errors.New("request body below the minimum rate")

// bodyRate cuts a request body that sends less than MinBodyRate bytes a
// second, on average over each MinBodyRateWindow, with 408 BODY_TIMEOUT.
// A read deadline at the end of the window catches a client that sends
// nothing at all. Requests without a body pass untouched.
func (s *Server) bodyRate(next echo.HandlerFunc) echo.HandlerFunc {
	if s.cfg.MinBodyRate <= 0 {
		return next
	}
	need := s.cfg.MinBodyRate * int64(s.cfg.MinBodyRateWindow/time.Second)
	if need <= 0 {
		need = 1
	}
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			return next(c)
		}
		orig := r.Body
		r.Body = &rateBody{
			ReadCloser: r.Body, rc: http.NewResponseController(c.Response().Writer),
			window: s.cfg.MinBodyRateWindow, need: need, stall: s.cfg.BodyStallTimeout,
		}
		// net/http decides whether to drain an unread body by its type
		// (it would otherwise try to read what a refused client never
		// sends): give it back its own.
		defer func() { r.Body = orig }()
		c.Set(ctxRateChecked, true)
		return next(c)
	}
}

// rateBody implements bodyRate. Not safe for concurrent use.
type rateBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	window   time.Duration
	need     int64         // bytes each window must bring
	stall    time.Duration // BodyStallTimeout: no byte for this long also cuts; <= 0: off
	start    time.Time     // of the current window; zero before the first read
	got      int64         // bytes in the current window
	deadline time.Time     // the read deadline set now
	done     bool
}

func (b *rateBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	now := time.Now()
	if b.start.IsZero() {
		b.start = now
	}
	for now.Sub(b.start) >= b.window {
		if b.got < b.need {
			return 0, fmt.Errorf("%w: %d bytes in %s, want at least %d", errBodyTooSlow, b.got, b.window, b.need)
		}
		b.start, b.got = b.start.Add(b.window), 0
	}
	b.arm(now)
	n, err := b.ReadCloser.Read(p)
	b.got += int64(n)
	switch {
	case err == io.EOF:
		// The connection outlives the body (keep-alive): clear the
		// deadline. After another error it stays, so that net/http's
		// drain of the rest cannot wait forever.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		if b.stall > 0 && time.Since(now) >= b.stall {
			break // stalled: the body reader explains a deadline
		}
		err = fmt.Errorf("%w: %d bytes in %s, want at least %d", errBodyTooSlow, b.got, b.window, b.need)
	case err == nil && b.got >= b.need && b.got-int64(n) < b.need:
		b.arm(time.Now()) // the window is paid for: move to its successor's end
	}
	return n, err
}

// arm sets the read deadline: the end of this window while it still
// lacks bytes, else the end of the next one; and no later than stall from
// now. Only a deadline that moves earlier, or a stall deadline a quarter
// used, costs a system call: fast bodies do not pay one per read.
func (b *rateBody) arm(now time.Time) {
	d := b.start.Add(b.window)
	if b.got >= b.need {
		d = d.Add(b.window)
	}
	if b.stall > 0 {
		if s := now.Add(b.stall); s.Before(d) {
			d = s
		}
	}
	if b.deadline.IsZero() || d.Before(b.deadline) || (b.deadline.Sub(now) < b.stall*3/4 && d.After(b.deadline)) ||
		(b.stall <= 0 && d.After(b.deadline)) {
		b.deadline = d
		_ = b.rc.SetReadDeadline(d) // ErrNotSupported off a real conn: no check
	}
}

// needRole refuses, with 403 FORBIDDEN naming the role, a request whose
// verified client certificate lacks role. It is installed only where
// client certificates are required (Config.RequireCoordinatorRole).
func needRole(role transport.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !transport.HasRole(c.Request(), role) {
				return withMessage(fmt.Errorf("%w: needs role %s", api.ErrForbidden, role), fmt.Sprintf(
					"this route needs a client certificate with the %s role (URI SAN %s); yours has %v",
					role, transport.RoleURI(role), transport.RolesOf(c.Request().TLS)))
			}
			return next(c)
		}
	}
}

// downloadChunk is how much of a download may be written under one write
// deadline: a reader that takes less than this in DownloadStallTimeout is
// dropped, one that keeps reading is never cut.
const downloadChunk = 256 << 10
