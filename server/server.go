package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"depot/store"
)

// ArtifactStore is what the artifact handlers need from a sled's store.
// *store.Store implements it; a domain wrapper (config, generations) may
// wrap one and override some methods. Implementations must be safe for
// concurrent use.
type ArtifactStore interface {
	// Put streams body into the store; size is the declared length or -1.
	// It must return once ctx is cancelled or body returns an error, and
	// keep nothing partial.
	Put(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error)
	// Open returns the artifact; the caller closes Blob.File.
	Open(ctx context.Context, d store.Digest) (*store.Blob, error)
	Stat(ctx context.Context, d store.Digest) (store.Info, error)
	// Delete removes the artifact; nil when it is absent.
	Delete(ctx context.Context, d store.Digest) error
	List(ctx context.Context) ([]store.Info, error)
	Mirrors() []store.MirrorStatus
}

var _ ArtifactStore = (*store.Store)(nil)

// Sled is what the server serves: a store plus the sled's config generation.
type Sled interface {
	ArtifactStore
	// Generation returns the current config generation, or nil while the
	// sled is unmanaged (it has never received a config).
	Generation(ctx context.Context) (*uint64, error)
}

// Unmanaged adapts a bare store into a Sled that never has a config.
func Unmanaged(s ArtifactStore) Sled { return unmanaged{s} }

type unmanaged struct{ ArtifactStore }

func (unmanaged) Generation(context.Context) (*uint64, error) { return nil, nil }

// Defaults for the zero values of Config.
const (
	DefaultMaxArtifactSize   = 4 << 30
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultBodyStallTimeout  = time.Minute
	DefaultShutdownTimeout   = 30 * time.Second
)

// Config configures New. Only Sled is required.
type Config struct {
	Sled Sled
	// Logger receives request logs and server errors; nil discards them.
	Logger *slog.Logger
	// Version is reported by GET /status.
	Version string
	// MaxArtifactSize bounds PUT bodies; 0 = DefaultMaxArtifactSize.
	MaxArtifactSize int64
	// ReadHeaderTimeout and IdleTimeout configure both http.Servers;
	// 0 = the defaults above.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// BodyStallTimeout fails an upload whose body makes no progress for this
	// long (408 BODY_TIMEOUT); 0 = DefaultBodyStallTimeout, < 0 = never.
	BodyStallTimeout time.Duration
	// ShutdownTimeout bounds how long Serve lets in-flight requests finish
	// once its context is done; 0 = DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// DepotURL is the repo-depot API's base URL as peers should reach it,
	// reported by GET /status; "" = "http://" + the depot listener's
	// address (right unless that is a wildcard or behind NAT).
	DepotURL string
}

// Server serves the sled API and the repo-depot API. Create it with New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	start    time.Time
	depotURL string // Config.DepotURL, or derived in Serve

	sledEcho, depotEcho *echo.Echo
	sledHTTP, depotHTTP *http.Server

	// baseCtx is the parent of every request context; cancelBase cuts off
	// requests still running when the shutdown deadline passes.
	baseCtx    context.Context
	cancelBase context.CancelFunc
	inflight   inflight

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds a Server; it listens nowhere until Serve.
func New(cfg Config) *Server {
	if cfg.Sled == nil {
		panic("server.New: Config.Sled is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxArtifactSize <= 0 {
		cfg.MaxArtifactSize = DefaultMaxArtifactSize
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.BodyStallTimeout == 0 {
		cfg.BodyStallTimeout = DefaultBodyStallTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger, start: time.Now(), depotURL: cfg.DepotURL}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())

	s.sledEcho = s.newEcho()
	s.sledRoutes(s.sledEcho)
	s.depotEcho = s.newEcho()
	s.depotRoutes(s.depotEcho)

	s.sledHTTP = s.newHTTPServer(s.sledEcho, "sled")
	s.depotHTTP = s.newHTTPServer(s.depotEcho, "depot")
	return s
}

// sledRoutes mounts the sled API. Later route groups (artifacts-config,
// copies, metrics, the operator API under /v1) are added here.
func (s *Server) sledRoutes(e *echo.Echo) {
	e.PUT("/artifacts/:sha256", s.putArtifact, s.limitBody(s.cfg.MaxArtifactSize))
	e.GET("/artifacts/:sha256", s.getArtifact)
	e.HEAD("/artifacts/:sha256", s.getArtifact)
	e.DELETE("/artifacts/:sha256", s.deleteArtifact)
	e.GET("/artifacts", s.listArtifacts)
	e.GET("/status", s.status)
}

// depotRoutes mounts the read-only repo-depot API that peers copy from.
func (s *Server) depotRoutes(e *echo.Echo) {
	e.GET("/artifact/sha256/:sha256", s.getArtifact)
	e.HEAD("/artifact/sha256/:sha256", s.getArtifact)
}

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	// echo's own logger only warns about double writes; keep it in our log.
	e.Logger.SetOutput(slog.NewLogLogger(s.log.Handler(), slog.LevelWarn).Writer())
	e.HTTPErrorHandler = s.handleError
	// Outermost first: every request is counted, has an id, is logged with
	// the status the error handler chose, and panics become 500s.
	e.Use(s.trackInflight, s.requestID, s.requestLogger(), s.recoverer())
	return e
}

func (s *Server) newHTTPServer(h http.Handler, name string) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// No ReadTimeout/WriteTimeout: uploads and downloads take as long
		// as they take; BodyStallTimeout catches stalled uploads.
		BaseContext: func(net.Listener) context.Context { return s.baseCtx },
		ErrorLog:    slog.NewLogLogger(s.log.With("api", name).Handler(), slog.LevelWarn),
	}
}

// SledHandler returns the sled API's handler (for tests and embedding).
func (s *Server) SledHandler() http.Handler { return s.sledEcho }

// DepotHandler returns the repo-depot API's handler.
func (s *Server) DepotHandler() http.Handler { return s.depotEcho }

// Serve serves the sled API on sledLn and the repo-depot API on depotLn
// until ctx is done or either listener fails, then shuts down as Shutdown
// does with Config.ShutdownTimeout. It returns nil after a shutdown in which
// every request finished, and closes both listeners. Call it once.
func (s *Server) Serve(ctx context.Context, sledLn, depotLn net.Listener) error {
	if s.depotURL == "" {
		// Written before any handler can run (they run in goroutines
		// started below), so handlers read it without a lock.
		s.depotURL = "http://" + depotLn.Addr().String()
	}
	errc := make(chan error, 2)
	go func() { errc <- serveErr("sled", s.sledHTTP.Serve(sledLn)) }()
	go func() { errc <- serveErr("depot", s.depotHTTP.Serve(depotLn)) }()

	var errs []error
	pending := 2
	select {
	case <-ctx.Done():
	case err := <-errc:
		pending--
		errs = append(errs, err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	errs = append(errs, s.Shutdown(sctx))
	for ; pending > 0; pending-- {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

func serveErr(name string, err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve %s API: %w", name, err)
}

// handlerGrace bounds the wait for handlers to return after their
// connections were closed and contexts cancelled.
const handlerGrace = 5 * time.Second

// Shutdown stops accepting connections on both APIs, lets in-flight
// requests finish until ctx is done, then cancels the contexts of those
// still running (so an interrupted upload's temp files are removed), closes
// their connections and waits briefly for their handlers to return. It
// returns nil if every request finished in time. It may be called more than
// once and concurrently; later calls wait for the first and return its
// result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var sledErr, depotErr error
	wg.Go(func() { sledErr = s.sledHTTP.Shutdown(ctx) })
	wg.Go(func() { depotErr = s.depotHTTP.Shutdown(ctx) })
	wg.Wait()
	if sledErr == nil && depotErr == nil {
		s.cancelBase()
		return nil
	}
	n := s.inflight.count()
	s.cancelBase()
	s.sledHTTP.Close()
	s.depotHTTP.Close()
	if n == 0 {
		// Only connections without a request were left (net/http waits
		// 5 s for a fresh connection's first request): nothing was lost.
		return nil
	}
	s.log.Warn("shutdown deadline passed; cut off in-flight requests", "requests", n)
	gctx, cancel := context.WithTimeout(context.Background(), handlerGrace)
	defer cancel()
	if err := s.inflight.wait(gctx); err != nil {
		return fmt.Errorf("shutdown: %d requests cut off; some handlers still running: %w", n, err)
	}
	return fmt.Errorf("shutdown: %d requests cut off: %w", n, errors.Join(sledErr, depotErr))
}

// inflight counts running handlers, so that Shutdown can wait for the ones
// whose connections it closed. Safe for concurrent use.
type inflight struct {
	mu   sync.Mutex
	n    int           // guarded by mu
	idle chan struct{} // guarded by mu; closed when n drops to 0
}

func (f *inflight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.idle)
	}
	f.mu.Unlock()
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
