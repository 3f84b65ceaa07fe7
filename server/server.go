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

	"depot/depot"
	"depot/server/metrics"
	"depot/server/openapi"
	"depot/server/transport"
	"depot/store"
)

// sledService is what the handlers need from the sled service.
// *depot.Sled implements it; tests substitute fakes (export_test.go).
// Implementations must be safe for concurrent use.
type sledService interface {
	// Put streams body into the store after the config checks; size is
	// the declared length or -1. It must return once ctx is cancelled or
	// body returns an error, and keep nothing partial.
	Put(ctx context.Context, d store.Digest, gen *uint64, body io.Reader, size int64) (store.PutResult, error)
	// Open returns the artifact; the caller closes Blob.File.
	Open(ctx context.Context, d store.Digest) (*store.Blob, error)
	// Delete removes the artifact; nil when it is absent.
	Delete(ctx context.Context, d store.Digest) error
	List(ctx context.Context) ([]store.Info, error)
	Mirrors() []store.MirrorStatus
	// Generation returns the current config generation, or nil while the
	// sled is unmanaged (it has never received a config).
	Generation(ctx context.Context) (*uint64, error)
	Config() (depot.Config, error)
	SetConfig(ctx context.Context, cfg depot.Config) error
	CopyFromDepot(ctx context.Context, d store.Digest, gen *uint64, baseURL string) error
	Copies() []depot.CopyJob
	WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (depot.CopyJob, error)
	StartScrub()
	Status() depot.SledStatus
}

var _ sledService = (*depot.Sled)(nil)

// Defaults for the zero values of Config.
const (
	DefaultMaxArtifactSize   = 4 << 30
	DefaultMaxRepoSize       = 16 << 30
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultBodyStallTimeout  = time.Minute
	DefaultShutdownTimeout   = 30 * time.Second
)

// Body limits of the small JSON requests.
const (
	maxConfigBody    = 32 << 20 // PUT /artifacts-config: ~480k hashes
	maxSmallJSONBody = 64 << 10 // copy-from-depot, PUT /v1/sleds/{id}
	maxTrustRootBody = 1 << 20  // POST /v1/system/update/trust-roots
)

// Config configures New. Only Sled is required.
type Config struct {
	// Sled is the sled service this daemon serves (the sled API and the
	// repo-depot API).
	Sled *depot.Sled
	// Coordinator, if set, gives this daemon the coordinator role: the
	// operator API under /v1. nil: every /v1 route answers 404
	// NOT_COORDINATOR.
	Coordinator *depot.Coordinator
	// Replicator is the coordinator's replication loop; set iff
	// Coordinator is.
	Replicator *depot.Replicator
	// Metrics, if set, is served at GET /metrics and records every request
	// of both APIs and every error code; nil: no /metrics route.
	Metrics *metrics.Metrics
	// Logger receives request logs and server errors; nil discards them.
	Logger *slog.Logger
	// Version is reported by GET /status.
	Version string
	// MaxArtifactSize bounds PUT /artifacts bodies; 0 =
	// DefaultMaxArtifactSize.
	MaxArtifactSize int64
	// MaxRepoSize bounds repository uploads (PUT
	// /v1/system/update/repositories); 0 = DefaultMaxRepoSize.
	MaxRepoSize int64
	// ReadHeaderTimeout and IdleTimeout configure both http.Servers;
	// 0 = the defaults above.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// BodyStallTimeout fails an upload whose body makes no progress for this
	// long (408 BODY_TIMEOUT); 0 = DefaultBodyStallTimeout, < 0 = never.
	BodyStallTimeout time.Duration
	// ShutdownTimeout bounds how long Serve lets in-flight requests finish
	// once its context is done; 0 = DefaultShutdownTimeout. Long-polls
	// answer at once when shutdown begins.
	ShutdownTimeout time.Duration
	// DepotURL is the repo-depot API's base URL as peers should reach it,
	// reported by GET /status; "" = "http://" + the depot listener's
	// address (right unless that is a wildcard or behind NAT).
	DepotURL string

	// RequireCoordinatorRole makes every sled-API mutation (config, PUT,
	// copy-from, DELETE, scrub) need a verified client certificate with the
	// coordinator role (403 FORBIDDEN otherwise). Set it when the sled
	// listener requires client certificates.
	RequireCoordinatorRole bool
	// WriteSlots bounds concurrent writes into the store, shared with the
	// sled service's copies; nil = NewWriteSlots(MaxConcurrentWrites).
	WriteSlots *depot.WriteSlots
	// MaxConcurrentWrites is used when WriteSlots is nil; 0 =
	// DefaultMaxConcurrentWrites.
	MaxConcurrentWrites int
	// MinBodyRate (bytes a second, averaged over each MinBodyRateWindow)
	// below which a request body is cut with 408; 0 = DefaultMinBodyRate,
	// < 0 = no check (BodyStallTimeout still applies).
	MinBodyRate       int64
	MinBodyRateWindow time.Duration // 0 = DefaultMinBodyRateWindow
	// DownloadStallTimeout drops a download whose reader takes no
	// downloadChunk bytes for this long; 0 = DefaultDownloadStallTimeout,
	// < 0 = never.
	DownloadStallTimeout time.Duration
	// Tokens is the --tokens-file's token set; nil: none (tokens may still
	// come from the catalog). With a tokens file there is no dev mode.
	Tokens *depot.TokenFile
	// OperatorAddr is the operator listener's address, for dev mode (open
	// when no token is configured and it is loopback); "" = the address of
	// the listener the operator routes are mounted on.
	OperatorAddr string
	// AuthFailureRate is how many failed authentications per second a
	// source address may make before it gets 429; 0 =
	// DefaultAuthFailureRate.
	AuthFailureRate float64
}

// Server serves the sled API and the repo-depot API. Create it with New.
type Server struct {
	cfg      Config
	sled     sledService
	coord    *depot.Coordinator // nil without the coordinator role
	rep      *depot.Replicator  // nil without the coordinator role
	log      *slog.Logger
	start    time.Time
	depotURL string // Config.DepotURL, or derived in Serve
	writes   *depot.WriteSlots

	sledEcho, depotEcho, operatorEcho *echo.Echo
	sledHTTP, depotHTTP, operatorHTTP *http.Server

	// baseCtx is the parent of every request context; cancelBase cuts off
	// requests still running when the shutdown deadline passes.
	baseCtx    context.Context
	cancelBase context.CancelFunc
	inflight   inflight
	// stopping is cancelled when shutdown begins: long-polls answer at
	// once instead of holding the shutdown up.
	stopping     context.Context
	stopLongPoll context.CancelFunc

	shutdownOnce sync.Once
	shutdownErr  error

	authFails    *failLimiter
	addrMu       sync.Mutex
	opListenAddr string // guarded by addrMu; the operator listener's address, set by Serve
}

// New builds a Server; it listens nowhere until Serve. It panics when
// Config.Sled is nil, or when only one of Coordinator and Replicator is set.
func New(cfg Config) *Server {
	if cfg.Sled == nil {
		panic("server.New: Config.Sled is nil")
	}
	return newServer(cfg, cfg.Sled)
}

func newServer(cfg Config, sled sledService) *Server {
	if (cfg.Coordinator == nil) != (cfg.Replicator == nil) {
		panic("server.New: Config.Coordinator and Config.Replicator must be set together")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxArtifactSize <= 0 {
		cfg.MaxArtifactSize = DefaultMaxArtifactSize
	}
	if cfg.MaxRepoSize <= 0 {
		cfg.MaxRepoSize = DefaultMaxRepoSize
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
	if cfg.MaxConcurrentWrites == 0 {
		cfg.MaxConcurrentWrites = DefaultMaxConcurrentWrites
	}
	if cfg.WriteSlots == nil {
		cfg.WriteSlots = depot.NewWriteSlots(cfg.MaxConcurrentWrites)
	}
	if cfg.MinBodyRate == 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	if cfg.MinBodyRateWindow <= 0 {
		cfg.MinBodyRateWindow = DefaultMinBodyRateWindow
	}
	if cfg.DownloadStallTimeout == 0 {
		cfg.DownloadStallTimeout = DefaultDownloadStallTimeout
	}
	s := &Server{
		cfg: cfg, sled: sled, coord: cfg.Coordinator, rep: cfg.Replicator,
		log: cfg.Logger, start: time.Now(), depotURL: cfg.DepotURL, writes: cfg.WriteSlots,
		authFails: newFailLimiter(cfg.AuthFailureRate),
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.stopping, s.stopLongPoll = context.WithCancel(context.Background())

	s.sledEcho = s.newEcho("sled")
	s.sledRoutes(s.sledEcho)
	s.sledEcho.Any("/v1", s.operatorElsewhere)
	s.sledEcho.Any("/v1/*", s.operatorElsewhere)
	s.depotEcho = s.newEcho("depot")
	s.depotRoutes(s.depotEcho)
	s.operatorEcho = s.newEcho("operator")
	s.operatorRoutes(s.operatorEcho)

	s.sledHTTP = s.newHTTPServer(s.sledEcho, "sled")
	s.depotHTTP = s.newHTTPServer(s.depotEcho, "depot")
	s.operatorHTTP = s.newHTTPServer(s.operatorEcho, "operator")
	return s
}

// operatorElsewhere answers /v1 on the sled listener: the operator API has
// its own listener (or, without the coordinator role, none).
func (s *Server) operatorElsewhere(c echo.Context) error {
	if s.coord == nil {
		return notCoordinator(nil)
	}
	return withMessage(fmt.Errorf("%w: operator API on the sled listener", store.ErrNotFound),
		"the operator API (/v1) is served on the coordinator's --operator-listen address (default 127.0.0.1:12346), not on the sled API")
}

// sledRoutes mounts the sled API (DESIGN.md §2).
func (s *Server) sledRoutes(e *echo.Echo) {
	// Mutations: only the coordinator, when client certificates are
	// checked; reads: any rack member the listener let in.
	mut := func(m ...echo.MiddlewareFunc) []echo.MiddlewareFunc {
		if s.cfg.RequireCoordinatorRole {
			m = append([]echo.MiddlewareFunc{needRole(transport.RoleCoordinator)}, m...)
		}
		return m
	}
	e.GET("/artifacts-config", s.getConfig)
	e.PUT("/artifacts-config", s.putConfig, mut(s.limitBody(maxConfigBody, ""))...)
	e.PUT("/artifacts/:sha256", s.putArtifact, mut(s.limitBody(s.cfg.MaxArtifactSize, "--max-artifact-size"), s.writeSlot)...)
	e.GET("/artifacts/:sha256", s.getArtifact)
	e.HEAD("/artifacts/:sha256", s.getArtifact)
	e.DELETE("/artifacts/:sha256", s.deleteArtifact, mut()...)
	e.POST("/artifacts/:sha256/copy-from-depot", s.copyFromDepot, mut(s.limitBody(maxSmallJSONBody, ""))...)
	e.GET("/artifacts", s.listArtifacts)
	e.GET("/copies", s.listCopies)
	e.GET("/copies/:sha256", s.getCopy)
	e.POST("/scrub", s.startScrub, mut()...)
	e.GET("/status", s.status)
	if s.cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(s.cfg.Metrics.Handler()))
	}
	e.GET("/openapi.json", echo.WrapHandler(openapi.Handler()))
}

// depotRoutes mounts the read-only repo-depot API that peers copy from.
func (s *Server) depotRoutes(e *echo.Echo) {
	e.GET("/artifact/sha256/:sha256", s.getArtifact)
	e.HEAD("/artifact/sha256/:sha256", s.getArtifact)
}

func (s *Server) newEcho(api string) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	// echo's own logger only warns about double writes; keep it in our log.
	e.Logger.SetOutput(slog.NewLogLogger(s.log.Handler(), slog.LevelWarn).Writer())
	e.HTTPErrorHandler = s.handleError
	// Outermost first: every request is measured (metrics, which need
	// the recoverer inside them), counted for shutdown, has an id, is
	// logged with the status the error handler chose, and panics become
	// 500s.
	if s.cfg.Metrics != nil {
		e.Use(s.cfg.Metrics.Middleware(api))
	}
	e.Use(s.trackInflight, s.requestID, s.requestLogger(), s.recoverer(), s.bodyRate)
	return e
}

func (s *Server) newHTTPServer(h http.Handler, name string) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// No ReadTimeout/WriteTimeout: uploads and downloads take as long
		// as they take; the body-rate check cuts slow uploads, and
		// downloads get per-chunk write deadlines.
		BaseContext: func(net.Listener) context.Context { return s.baseCtx },
		ErrorLog:    slog.NewLogLogger(s.log.With("api", name).Handler(), slog.LevelWarn),
	}
}

// SledHandler returns the sled API's handler (for tests and embedding).
func (s *Server) SledHandler() http.Handler { return s.sledEcho }

// DepotHandler returns the repo-depot API's handler.
func (s *Server) DepotHandler() http.Handler { return s.depotEcho }

// OperatorHandler returns the operator API's handler.
func (s *Server) OperatorHandler() http.Handler { return s.operatorEcho }

// Serve serves the sled API on sledLn, the repo-depot API on depotLn and,
// if operatorLn is not nil, the operator API on operatorLn, until ctx is
// done or a listener fails, then shuts down as Shutdown does with
// Config.ShutdownTimeout. The listeners may be TLS listeners (each keeps
// its own tls.Config). It returns nil after a shutdown in which every
// request finished, and closes the listeners. Call it once.
func (s *Server) Serve(ctx context.Context, sledLn, depotLn, operatorLn net.Listener) error {
	if s.depotURL == "" {
		// Written before any handler can run (they run in goroutines
		// started below), so handlers read it without a lock.
		s.depotURL = "http://" + depotLn.Addr().String()
	}
	if operatorLn != nil {
		s.addrMu.Lock()
		s.opListenAddr = operatorLn.Addr().String()
		s.addrMu.Unlock()
	}
	errc := make(chan error, 3)
	pending := 2
	go func() { errc <- serveErr("sled", s.sledHTTP.Serve(sledLn)) }()
	go func() { errc <- serveErr("depot", s.depotHTTP.Serve(depotLn)) }()
	if operatorLn != nil {
		pending++
		go func() { errc <- serveErr("operator", s.operatorHTTP.Serve(operatorLn)) }()
	}

	var errs []error
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

// Shutdown stops accepting connections on both APIs, answers long-polls
// at once (with the state they have), lets other in-flight requests finish
// until ctx is done, then cancels the contexts of those
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
	s.stopLongPoll()
	var wg sync.WaitGroup
	var sledErr, depotErr, opErr error
	wg.Go(func() { sledErr = s.sledHTTP.Shutdown(ctx) })
	wg.Go(func() { depotErr = s.depotHTTP.Shutdown(ctx) })
	wg.Go(func() { opErr = s.operatorHTTP.Shutdown(ctx) })
	wg.Wait()
	if sledErr == nil && depotErr == nil && opErr == nil {
		s.cancelBase()
		return nil
	}
	n := s.inflight.count()
	s.cancelBase()
	s.sledHTTP.Close()
	s.depotHTTP.Close()
	s.operatorHTTP.Close()
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
	return fmt.Errorf("shutdown: %d requests cut off: %w", n, errors.Join(sledErr, depotErr, opErr))
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
