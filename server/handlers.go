package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"depot/depot"
	"depot/server/api"
	"depot/store"
)

// putArtifact streams the raw body into the sled:
// PUT /artifacts/{sha256}?generation=G.
func (s *Server) putArtifact(c echo.Context) error {
	d, gen, err := digestAndGeneration(c)
	if err != nil {
		return err
	}
	r := c.Request()
	body := s.newBodyReader(c)
	res, err := s.sled.Put(r.Context(), d, gen, body, r.ContentLength)
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
	blob, err := s.sled.Open(c.Request().Context(), d)
	if err != nil {
		return err
	}
	defer blob.File.Close()
	h := c.Response().Header()
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set(echo.HeaderContentType, "application/octet-stream")
	http.ServeContent(sendfileWriter{Response: c.Response(), stall: s.cfg.DownloadStallTimeout}, c.Request(), "", time.Time{}, blob.File)
	return nil
}

// deleteArtifact: DELETE /artifacts/{sha256}, 204 whether or not it existed.
func (s *Server) deleteArtifact(c echo.Context) error {
	d, err := digestParam(c)
	if err != nil {
		return err
	}
	if err := s.sled.Delete(c.Request().Context(), d); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listArtifacts: GET /artifacts.
func (s *Server) listArtifacts(c echo.Context) error {
	ctx := c.Request().Context()
	if l, ok := s.sled.(interface {
		ListJSON(context.Context) ([]byte, error)
	}); ok {
		body, err := l.ListJSON(ctx) // encoded once per change
		if err != nil {
			return err
		}
		return c.JSONBlob(http.StatusOK, body)
	}
	gen, err := s.sled.Generation(ctx)
	if err != nil {
		return err
	}
	infos, err := s.sled.List(ctx)
	if err != nil {
		return err
	}
	list := make(map[api.Digest]int, len(infos))
	for _, in := range infos {
		list[api.Digest(in.Digest)] = in.Copies
	}
	return c.JSON(http.StatusOK, api.ListResponse{Generation: gen, List: list})
}

// getConfig: GET /artifacts-config.
func (s *Server) getConfig(c echo.Context) error {
	cfg, err := s.sled.Config()
	if err != nil {
		return err
	}
	if cfg.Artifacts == nil {
		cfg.Artifacts = []store.Digest{}
	}
	return c.JSON(http.StatusOK, wireConfig(cfg))
}

// putConfig: PUT /artifacts-config, 204.
func (s *Server) putConfig(c echo.Context) error {
	var body struct {
		CatalogID  string          `json:"catalog_id"`
		Generation *uint64         `json:"generation"`
		Artifacts  *[]store.Digest `json:"artifacts"`
	}
	if err := s.decodeJSON(c, &body, "an artifact config"); err != nil {
		return err
	}
	if body.Generation == nil || body.Artifacts == nil {
		return withMessage(api.ErrBadRequest,
			`the config needs both "generation" (an integer) and "artifacts" (an array of sha256s)`)
	}
	if err := checkGeneration(*body.Generation, `"generation": `); err != nil {
		return err
	}
	if body.CatalogID != "" && !depot.ValidCatalogID(body.CatalogID) {
		return withMessage(api.ErrBadRequest, `"catalog_id", when given, must be 32 lowercase hex digits`)
	}
	cfg := depot.Config{CatalogID: body.CatalogID, Generation: *body.Generation, Artifacts: *body.Artifacts}
	if err := s.sled.SetConfig(c.Request().Context(), cfg); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// copyFromDepot: POST /artifacts/{sha256}/copy-from-depot?generation=G,
// 202 once the job runs.
func (s *Server) copyFromDepot(c echo.Context) error {
	d, gen, err := digestAndGeneration(c)
	if err != nil {
		return err
	}
	var body api.CopyFromDepotRequest
	if err := s.decodeJSON(c, &body, `{"depot_base_url": "http://host:port"}`); err != nil {
		return err
	}
	if err := s.sled.CopyFromDepot(c.Request().Context(), d, gen, body.DepotBaseURL); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, api.Empty{})
}

// listCopies: GET /copies.
func (s *Server) listCopies(c echo.Context) error {
	jobs := s.sled.Copies()
	if jobs == nil {
		jobs = []depot.CopyJob{}
	}
	return c.JSON(http.StatusOK, api.List[api.CopyJob]{Items: convert(jobs, wireCopyJob)})
}

// getCopy: GET /copies/{sha256}?wait=30s, a long-poll with wait.
func (s *Server) getCopy(c echo.Context) error {
	d, err := digestParam(c)
	if err != nil {
		return err
	}
	wait, err := waitParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.longPoll(c)
	defer cancel()
	job, err := s.sled.WaitCopy(ctx, d, wait)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wireCopyJob(job))
}

// startScrub: POST /scrub, 202 with the scrub status.
func (s *Server) startScrub(c echo.Context) error {
	s.sled.StartScrub()
	return c.JSON(http.StatusAccepted, wireScrub(s.sled.Status().Scrub))
}

// status: GET /status.
func (s *Server) status(c echo.Context) error {
	st := s.sled.Status()
	mirrors := s.sled.Mirrors()
	if mirrors == nil {
		mirrors = []store.MirrorStatus{}
	}
	return c.JSON(http.StatusOK, api.StatusResponse{
		Version:             s.cfg.Version,
		Mirrors:             convert(mirrors, wireMirror),
		Generation:          st.Generation,
		CatalogID:           st.CatalogID,
		ConfiguredArtifacts: st.Artifacts,
		DepotURL:            s.depotURL,
		UptimeSeconds:       time.Since(s.start).Seconds(),
		Copies:              wireCopyCounts(st.Copies),
		Reconciler:          wireReconcile(st.Reconciler),
		Scrub:               wireScrub(st.Scrub),
		Auth:                s.AuthMode(c.Request().Context()),
	})
}

// longPoll returns the context a long-poll waits under: the request's,
// also cancelled when shutdown begins, so the poll answers at once.
func (s *Server) longPoll(c echo.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(c.Request().Context())
	stop := context.AfterFunc(s.stopping, cancel)
	return ctx, func() { stop(); cancel() }
}

// bodyReader wraps an upload body: it remembers the first read error so
// that a failed Put can be blamed on the body (too large, stalled,
// truncated) whatever the store made of it, and it keeps a per-read stall
// deadline on the connection. Not safe for concurrent use (neither is any
// io.Reader).
type bodyReader struct {
	r     io.Reader
	flag  string // the flag that sets the route's body limit, for messages
	rc    *http.ResponseController
	stall time.Duration // <= 0: no deadline
	// external: another reader below sets the deadlines (bodyRate);
	// stall is then only for messages.
	external bool
	next     time.Time // the read deadline currently set
	n        int64     // bytes read
	err      error     // first error other than io.EOF
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.stall > 0 && !b.external {
		// Re-arm only when a quarter of the window is used up, so a fast
		// upload does not pay for a deadline update on every read.
		if now := time.Now(); b.next.Sub(now) < b.stall*3/4 {
			b.next = now.Add(b.stall)
			_ = b.rc.SetReadDeadline(b.next) // ErrNotSupported off a real conn: no stall check
		}
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err == io.EOF && b.stall > 0 && !b.external {
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

// newBodyReader wraps the request body of c with the route's limit flag
// and the stall deadline.
func (s *Server) newBodyReader(c echo.Context) *bodyReader {
	flag, _ := c.Get(ctxLimitFlag).(string)
	return &bodyReader{
		r:     c.Request().Body,
		flag:  flag,
		rc:    http.NewResponseController(c.Response().Writer),
		stall: s.cfg.BodyStallTimeout,
		// The body-rate check, if on, owns the read deadline.
		external: c.Get(ctxRateChecked) != nil,
	}
}

// explain blames a failed Put (or decode) on the body when reading it
// failed.
func (b *bodyReader) explain(putErr error) error {
	if b.err == nil {
		return putErr
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(b.err, &mbe):
		return withMessage(
			fmt.Errorf("%w: body over %d bytes (store: %v)", api.ErrTooLarge, mbe.Limit, putErr),
			fmt.Sprintf("the body exceeds this route's limit of %d bytes%s; nothing was stored", mbe.Limit, flagNote(b.flag)))
	case errors.Is(b.err, errBodyTooSlow):
		return withMessage(
			fmt.Errorf("%w: %w after %d bytes (store: %v)", api.ErrBodyTimeout, b.err, b.n, putErr),
			"the body arrived slower than this daemon's minimum rate (--min-body-rate); nothing was stored: retry the upload")
	case errors.Is(b.err, os.ErrDeadlineExceeded):
		return withMessage(
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
//
// With stall > 0 it writes in chunks of downloadChunk, each under a write
// deadline stall from its start (see downloadChunk).
type sendfileWriter struct {
	*echo.Response
	stall time.Duration
}

func (w sendfileWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.Committed {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.Writer.(io.ReaderFrom)
	if !ok {
		return io.Copy(onlyWriter{w.Response}, r)
	}
	if w.stall <= 0 {
		n, err := rf.ReadFrom(r)
		w.Size += n
		return n, err
	}
	rc := http.NewResponseController(w.Writer)
	defer rc.SetWriteDeadline(time.Time{})
	// ServeContent hands an *io.LimitedReader over the file; chunks are
	// cut from it at one level, so sendfile still sees the *os.File.
	lr, limited := r.(*io.LimitedReader)
	var total int64
	for {
		chunk := io.LimitReader(r, downloadChunk)
		if limited {
			if lr.N <= 0 {
				return total, nil
			}
			chunk = &io.LimitedReader{R: lr.R, N: min(lr.N, downloadChunk)}
		}
		_ = rc.SetWriteDeadline(time.Now().Add(w.stall))
		n, err := rf.ReadFrom(chunk)
		if limited {
			lr.N -= n
		}
		total += n
		w.Size += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// onlyWriter hides ReadFrom so io.Copy does not recurse into it.
type onlyWriter struct{ io.Writer }
