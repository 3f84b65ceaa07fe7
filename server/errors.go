package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"depot/server/api"
	"depot/store"
)

// handleError is echo's HTTPErrorHandler and the one place where an error
// becomes a status, an error_code and a message (through forError). The
// real error is logged by the request logger, never sent for 5xx. It runs
// more than once per failed request (the request logger, the metrics
// middleware and echo itself hand it the error): only the first call
// writes, and the error is counted in the metrics once.
func (s *Server) handleError(err error, c echo.Context) {
	entry, msg := forError(s.fromEcho(err, c.Request()))
	if s.cfg.Metrics != nil && c.Get(ctxObserved) == nil {
		// Counted even when the answer is already out (a download that
		// failed midway), once per request.
		c.Set(ctxObserved, true)
		s.cfg.Metrics.ObserveError(entry.Code)
	}
	if c.Response().Committed {
		// Headers are out (e.g. a download failed midway): all we can do is
		// let the request log record the error.
		return
	}
	h := c.Response().Header()
	h.Set(api.ErrorCodeHeader, entry.Code)
	if entry.RetryAfter > 0 {
		h.Set(api.RetryAfterHeader, strconv.Itoa(int(entry.RetryAfter.Seconds())))
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(entry.Status)
	} else {
		werr = c.JSON(entry.Status, api.ErrorBody{
			RequestID: requestIDOf(c),
			ErrorCode: entry.Code,
			Message:   msg,
		})
	}
	if werr != nil {
		s.log.Debug("write error response", "request_id", requestIDOf(c), "error", werr)
	}
}

// fromEcho translates echo's own errors (unknown route, wrong method,
// limits) into the sentinels of the table; other errors pass unchanged.
func (s *Server) fromEcho(err error, r *http.Request) error {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return err
	}
	switch he.Code {
	case http.StatusNotFound:
		if s.coord == nil && (r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/")) {
			return notCoordinator(err)
		}
		return withMessage(fmt.Errorf("%w: %w", store.ErrNotFound, err),
			fmt.Sprintf("no such path: %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		return withMessage(fmt.Errorf("%w: %w", api.ErrMethodNotAllowed, err),
			fmt.Sprintf("%s is not allowed on %s; the Allow header lists the methods that are", r.Method, r.URL.Path))
	case http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %w", api.ErrTooLarge, err)
	case http.StatusBadRequest:
		return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return err
}
