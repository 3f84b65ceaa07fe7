package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"depot/depot/randid"
	"depot/server/api"
)

// Keys of values handlers leave in the echo context for the request log.
const (
	ctxRequestID   = "depot.request_id"
	ctxBytesIn     = "depot.bytes_in"
	ctxLimitFlag   = "depot.limit_flag" // the flag that sets the route's body limit
	ctxObserved    = "depot.error_observed"
	ctxRateChecked = "depot.rate_checked" // bodyRate wraps the body
)

// trackInflight counts the request for Shutdown.
func (s *Server) trackInflight(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s.inflight.add()
		defer s.inflight.done()
		return next(c)
	}
}

// requestID honours a well-formed incoming X-Request-Id (so a coordinator's
// id follows its request into the sled's log) and otherwise makes one up.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(api.RequestIDHeader)
		if !validRequestID(id) {
			id = randid.New()
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(api.RequestIDHeader, id)
		return next(c)
	}
}

// validRequestID accepts short ids of characters that are safe in logs and
// headers; anything else is replaced rather than echoed back.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// requestLogger logs one line per request, after the error handler has
// chosen the status. Server errors log at ERROR with the real error, client
// errors at INFO.
func (s *Server) requestLogger() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError:     true,
		LogLatency:      true,
		LogMethod:       true,
		LogURIPath:      true,
		LogStatus:       true,
		LogError:        true,
		LogResponseSize: true,
		LogRemoteIP:     true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			attrs := []slog.Attr{
				slog.String("request_id", requestIDOf(c)),
				slog.String("method", v.Method),
				slog.String("path", v.URIPath),
				slog.Int("status", v.Status),
				slog.Int64("bytes", v.ResponseSize),
				slog.Duration("latency", v.Latency),
				slog.String("remote", c.Request().RemoteAddr),
			}
			if n, ok := c.Get(ctxBytesIn).(int64); ok {
				attrs = append(attrs, slog.Int64("bytes_in", n))
			}
			level := slog.LevelInfo
			if v.Error != nil {
				attrs = append(attrs, slog.String("error", v.Error.Error()))
				if v.Status >= 500 {
					level = slog.LevelError
				}
			}
			s.log.LogAttrs(context.Background(), level, "request", attrs...)
			return nil
		},
	})
}

// recoverer turns a panic into an error (500 INTERNAL) and logs its stack.
func (s *Server) recoverer() echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		// Return the error to the request logger, which calls the error
		// handler, so the logged status is the one sent.
		DisableErrorHandler: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic in handler", "request_id", requestIDOf(c), "error", err, "stack", string(stack))
			return fmt.Errorf("panic: %w", err)
		},
	})
}

// limitBody caps a route's request body at max bytes: a declared
// Content-Length over it is refused before any of the body is read, and an
// undeclared (chunked) body fails its read past max with
// *http.MaxBytesError, which maps to 413 TOO_LARGE. flag names the
// daemon flag that sets max, if one does, for the message.
func (s *Server) limitBody(max int64, flag string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > max {
				return withMessage(api.ErrTooLarge, fmt.Sprintf(
					"Content-Length %d exceeds this route's limit of %d bytes%s; nothing was read", r.ContentLength, max, flagNote(flag)))
			}
			// The raw ResponseWriter lets MaxBytesReader tell net/http to
			// close the connection after the 413 instead of draining the body.
			r.Body = http.MaxBytesReader(c.Response().Writer, r.Body, max)
			c.Set(ctxLimitFlag, flag)
			return next(c)
		}
	}
}

// flagNote returns " (--flag)" or "".
func flagNote(flag string) string {
	if flag == "" {
		return ""
	}
	return " (" + flag + ")"
}
