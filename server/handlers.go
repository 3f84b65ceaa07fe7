package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"depot/server/api"
	"depot/store"
)

// digestParam parses the :sha256 path parameter: the one place where a hex
// string becomes a store.Digest.
func digestParam(c echo.Context) (store.Digest, error) {
	d, err := store.ParseDigest(c.Param("sha256"))
	if err != nil {
		// ParseDigest's text describes the client's input, so show it.
		return d, api.WithMessage(err, err.Error())
	}
	return d, nil
}

// putArtifact streams the raw body into the store: PUT /artifacts/{sha256}.
func (s *Server) putArtifact(c echo.Context) error {
	d, err := digestParam(c)
	if err != nil {
		return err
	}
	r := c.Request()
	body := &bodyReader{r: r.Body, rc: http.NewResponseController(c.Response().Writer), stall: s.cfg.BodyStallTimeout}
	res, err := s.cfg.Sled.Put(r.Context(), d, body, r.ContentLength)
	c.Set(ctxBytesIn, body.n)
	if err != nil {
		return body.explain(err)
	}
	return c.JSON(http.StatusOK, api.PutResult{Datasets: res.Datasets, SuccessfulWrites: res.SuccessfulWrites})
}

// getArtifact serves GET and HEAD of /artifacts/{sha256} (sled API) and
// /artifact/sha256/{sha256} (depot API). http.ServeContent does Range,
// If-None-Match and If-Range; the ETag is the digest, and there is no
// Last-Modified because the content of a name never changes.
func (s *Server) getArtifact(c echo.Context) error {
	d, err := digestParam(c)
	if err != nil {
		return err
	}
	blob, err := s.cfg.Sled.Open(c.Request().Context(), d)
	if err != nil {
		return err
	}
	defer blob.File.Close()
	h := c.Response().Header()
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set(echo.HeaderContentType, "application/octet-stream")
	http.ServeContent(sendfileWriter{c.Response()}, c.Request(), "", time.Time{}, blob.File)
	return nil
}

// deleteArtifact: DELETE /artifacts/{sha256}, 204 whether or not it existed.
func (s *Server) deleteArtifact(c echo.Context) error {
	d, err := digestParam(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Sled.Delete(c.Request().Context(), d); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listArtifacts: GET /artifacts.
func (s *Server) listArtifacts(c echo.Context) error {
	ctx := c.Request().Context()
	gen, err := s.cfg.Sled.Generation(ctx)
	if err != nil {
		return err
	}
	infos, err := s.cfg.Sled.List(ctx)
	if err != nil {
		return err
	}
	list := make(map[store.Digest]int, len(infos))
	for _, in := range infos {
		list[in.Digest] = in.Copies
	}
	return c.JSON(http.StatusOK, api.ListResponse{Generation: gen, List: list})
}

// status: GET /status.
func (s *Server) status(c echo.Context) error {
	gen, err := s.cfg.Sled.Generation(c.Request().Context())
	if err != nil {
		return err
	}
	mirrors := s.cfg.Sled.Mirrors()
	if mirrors == nil {
		mirrors = []store.MirrorStatus{}
	}
	return c.JSON(http.StatusOK, api.StatusResponse{
		Version:       s.cfg.Version,
		Mirrors:       mirrors,
		Generation:    gen,
		DepotURL:      s.depotURL,
		UptimeSeconds: time.Since(s.start).Seconds(),
	})
}

// bodyReader wraps an upload body: it remembers the first read error so
// that a failed Put can be blamed on the body (too large, stalled,
// truncated) whatever the store made of it, and it keeps a per-read stall
// deadline on the connection. Not safe for concurrent use (neither is any
// io.Reader).
type bodyReader struct {
	r     io.Reader
	rc    *http.ResponseController
	stall time.Duration // <= 0: no deadline
	next  time.Time     // the read deadline currently set
	n     int64         // bytes read
	err   error         // first error other than io.EOF
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.stall > 0 {
		// Re-arm only when a quarter of the window is used up, so a fast
		// upload does not pay for a deadline update on every read.
		if now := time.Now(); b.next.Sub(now) < b.stall*3/4 {
			b.next = now.Add(b.stall)
			_ = b.rc.SetReadDeadline(b.next) // ErrNotSupported off a real conn: no stall check
		}
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err == io.EOF && b.stall > 0 {
		// The connection outlives the body (keep-alive, and net/http's
		// background read that notices a client hanging up), so clear the
		// deadline. After an error it stays: net/http may still try to
		// drain the rest of the body, and must not wait forever for it.
		_ = b.rc.SetReadDeadline(time.Time{})
		b.next = time.Time{}
	}
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// explain blames a failed Put on the body when reading it failed.
func (b *bodyReader) explain(putErr error) error {
	if b.err == nil {
		return putErr
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(b.err, &mbe):
		return api.WithMessage(
			fmt.Errorf("%w: body over %d bytes (store: %v)", api.ErrTooLarge, mbe.Limit, putErr),
			fmt.Sprintf("the body exceeds this sled's limit of %d bytes (--max-artifact-size); nothing was stored", mbe.Limit))
	case errors.Is(b.err, os.ErrDeadlineExceeded):
		return api.WithMessage(
			fmt.Errorf("%w: no body bytes for %s after %d bytes (store: %v)", api.ErrBodyTimeout, b.stall, b.n, putErr),
			fmt.Sprintf("no bytes of the body arrived for %s; nothing was stored: retry the upload", b.stall))
	default:
		// A body that ends early or a connection that breaks is a
		// truncated upload; the client is usually gone by now.
		return fmt.Errorf("%w: reading the body failed after %d bytes: %v (store: %v)", store.ErrSizeMismatch, b.n, b.err, putErr)
	}
}

// sendfileWriter lets http.ServeContent reach net/http's ReadFrom (which
// uses sendfile for an *os.File) through echo's Response, which does not
// implement io.ReaderFrom, while echo still records the status and size for
// the request log.
type sendfileWriter struct{ *echo.Response }

func (w sendfileWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.Committed {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.Writer.(io.ReaderFrom)
	if !ok {
		return io.Copy(onlyWriter{w.Response}, r)
	}
	n, err := rf.ReadFrom(r)
	w.Size += n
	return n, err
}

// onlyWriter hides ReadFrom so io.Copy does not recurse into it.
type onlyWriter struct{ io.Writer }
