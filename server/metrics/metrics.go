package metrics

import (
	"io"
	"net/http"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"depot/depot"
	"depot/store"
)

const namespace = "depot"

// RouteUnmatched is the route label of requests that matched no route.
const RouteUnmatched = "unmatched"

// CodeHashMismatch is the error_code counted by depot_errors_total that
// New starts at 0, so that increase() sees the first mismatch.
const CodeHashMismatch = "HASH_MISMATCH"

// Sources are read at scrape time, so nothing has to push state into
// Metrics. Any field may be nil: its metrics are then absent (e.g. a sled
// without the coordinator role leaves Replication and RepoStates nil).
// Every function is called on each scrape, possibly by several scrapes at
// once: it must be safe for concurrent use, cheap and non-blocking.
type Sources struct {
	// Mirrors gives each mirror's health and usage (depot_mirror_*).
	Mirrors func() []store.MirrorStatus
	// Scrub gives the scrub progress and totals (depot_scrub_*).
	Scrub func() store.ScrubStatus
	// Sled gives config generation, copy jobs and the delete reconciler
	// (depot_config_*, depot_copies_*, depot_reconciler_*). Its Scrub
	// field is ignored; scrub metrics come from Scrub.
	Sled func() depot.SledStatus
	// Replication gives the coordinator's replication counters
	// (depot_replication_*).
	Replication func() depot.ReplicationStatus
	// RepoStates gives the number of repositories in each state
	// (depot.RepoReplicating, RepoDurable, RepoComplete) for
	// depot_repositories{state}.
	RepoStates func() map[string]int
}

// Metrics is depotd's metrics: a registry of its own holding the scrape-time
// collector over Sources, the Go and process collectors, and the pushed
// request, error and activation metrics. Safe for concurrent use.
type Metrics struct {
	registry *prometheus.Registry
	handler  http.Handler

	requests      *prometheus.CounterVec   // api, route, method, code
	requestBytes  *prometheus.CounterVec   // api, route
	responseBytes *prometheus.CounterVec   // api, route
	duration      *prometheus.HistogramVec // api, route, method
	errors        *prometheus.CounterVec   // code
	activation    prometheus.Histogram
}

// New returns a Metrics with a new registry reading src at scrape time.
// It registers nothing globally; call it once per process (or test).
func New(src Sources) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by listener (api), route template, method and status code.",
		}, []string{"api", "route", "method", "code"}),
		requestBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_bytes_total",
			Help: "Request body bytes read by handlers, by listener (api) and route template.",
		}, []string{"api", "route"}),
		responseBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "response_bytes_total",
			Help: "Response body bytes written, by listener (api) and route template.",
		}, []string{"api", "route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help: "Time from routing to the handler's return (the whole transfer for streamed bodies), by listener (api), route template and method.",
			// 1 ms … 1048 s: a 4 KiB GET and a multi-GiB PUT both land
			// in a bucket of their own.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 11),
		}, []string{"api", "route", "method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "errors_total",
			Help: "Error responses by error_code; HASH_MISMATCH counts bodies that did not hash to their name.",
		}, []string{"code"}),
		activation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "replication", Name: "activation_duration_seconds",
			Help: "Duration of replication activations (collect, plan, execute).",
			// 10 ms … ~44 min (the default copy timeout is 30 min).
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
	}
	m.errors.WithLabelValues(CodeHashMismatch) // starts at 0
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newSourceCollector(src),
		m.requests, m.requestBytes, m.responseBytes, m.duration,
		m.errors, m.activation,
	)
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		// A failing collector loses its own metrics, not the scrape;
		// failures are counted in promhttp_metric_handler_errors_total.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.registry,
	})
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics / protobuf when the scraper asks). The same handler is
// returned on every call.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry returns the registry, for tests and for registering more
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// ObserveError counts one error response with the given error_code in
// depot_errors_total{code}. code must come from the fixed error table
// (api.Code*), never from client input, to bound the label's values.
func (m *Metrics) ObserveError(code string) {
	m.errors.WithLabelValues(code).Inc()
}

// ObserveActivation records the duration of one replication activation in
// depot_replication_activation_duration_seconds.
func (m *Metrics) ObserveActivation(d time.Duration) {
	m.activation.Observe(d.Seconds())
}

// Middleware returns echo middleware that records each request of the
// listener api ("sled" or "depot"): depot_http_requests_total,
// depot_http_request_bytes_total (bytes the handler read from the body),
// depot_http_response_bytes_total (c.Response().Size) and
// depot_http_request_duration_seconds. The route label is echo's route
// template (c.Path()), or RouteUnmatched when no route matched.
//
// When the handler returns an error, Middleware passes it to c.Error
// (unless the response is already committed) so that the status recorded
// is the one sent, then returns it; the error handler must ignore committed
// responses, as echo's default one does. Install it with Use (after
// routing, so c.Path() is known) and before echo's Recover.
func (m *Metrics) Middleware(api string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			req := c.Request()
			var body *countingBody
			if req.Body != nil && req.Body != http.NoBody {
				body = &countingBody{ReadCloser: req.Body}
				req.Body = body
			}

			err := next(c)
			if err != nil && !c.Response().Committed {
				c.Error(err)
			}

			res := c.Response()
			route := routeOf(c)
			method := methodLabel(req.Method)
			status := res.Status
			if status == 0 {
				status = http.StatusOK // net/http's default when nothing was written
			}
			m.requests.WithLabelValues(api, route, method, strconv.Itoa(status)).Inc()
			if body != nil {
				m.requestBytes.WithLabelValues(api, route).Add(float64(body.n.Load()))
			} else {
				m.requestBytes.WithLabelValues(api, route) // the series exists at 0
			}
			m.responseBytes.WithLabelValues(api, route).Add(float64(max(res.Size, 0)))
			m.duration.WithLabelValues(api, route, method).Observe(time.Since(start).Seconds())
			return err
		}
	}
}

// notFound is echo's handler for requests that matched no route.
var notFound = reflect.ValueOf(echo.NotFoundHandler).Pointer()

// routeOf returns the route template of the request, or RouteUnmatched.
// echo gives unmatched requests echo.NotFoundHandler and, as their path,
// the closest node of its tree (which may be no route at all) or "".
func routeOf(c echo.Context) string {
	p := c.Path()
	if p == "" {
		return RouteUnmatched
	}
	if h := c.Handler(); h != nil && reflect.ValueOf(h).Pointer() == notFound {
		return RouteUnmatched
	}
	return p
}

// methodLabel maps the request method onto a fixed set of values.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost,
		http.MethodDelete, http.MethodPatch, http.MethodOptions,
		http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// countingBody counts the bytes read through it. n is atomic because a
// handler may hand the body to another goroutine.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
