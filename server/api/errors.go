package api

import (
	"errors"
	"net/http"
	"time"

	"depot/depot"
	"depot/store"
	"depot/tuf"
)

// Sentinels for failures that belong to the HTTP layer rather than to a
// domain package. The server returns them (wrapped) from handlers; the
// client's errors unwrap to them.
var (
	// ErrTooLarge: the body is larger than the route accepts.
	ErrTooLarge = errors.New("request body too large")
	// ErrBodyTimeout: the client stopped sending the body for too long.
	ErrBodyTimeout = errors.New("request body stalled")
	// ErrBadRequest: a malformed request that no more specific entry covers.
	ErrBadRequest = errors.New("bad request")
	// ErrMethodNotAllowed: the path exists, the method does not.
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrInternal: anything the table does not map. Its text never
	// reaches the client.
	ErrInternal = errors.New("internal error")
)

// Entry maps one domain failure to its HTTP status and error_code. Several
// entries may share a code (NOT_FOUND covers artifacts, copy jobs,
// repositories, trust roots and sleds); the first entry with a code is its
// primary one, whose Err the client maps the code back to.
type Entry struct {
	Code   string
	Status int
	// Err is the sentinel: the server matches it with errors.Is, and the
	// client's *APIError unwraps to the Err of the code's primary entry.
	Err error
	// Match, if set, also matches errors that are not Err (for error types
	// such as *http.MaxBytesError, which errors.Is cannot see).
	Match func(error) bool
	// Message is what the client is told when the request gives no better
	// one (see WithMessage and Public); for 4xx it says what to do about it.
	Message string
	// Public, for a 4xx entry, sends the error's own text as the message
	// instead of Message: the depot and tuf packages write their errors
	// for operators (which generation, which check, which artifact).
	Public bool
	// RetryAfter, if positive, is sent as the Retry-After header (seconds).
	RetryAfter time.Duration
}

// Codes of the entries below, for callers that compare codes.
const (
	CodeInvalidHash         = "INVALID_HASH"
	CodeHashMismatch        = "HASH_MISMATCH"
	CodeTruncatedBody       = "TRUNCATED_BODY"
	CodeBadRequest          = "BAD_REQUEST"
	CodeNotFound            = "NOT_FOUND"
	CodeMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	CodeBodyTimeout         = "BODY_TIMEOUT"
	CodeTooLarge            = "TOO_LARGE"
	CodeNoMirrors           = "NO_MIRRORS"
	CodeShuttingDown        = "SHUTTING_DOWN"
	CodeInsufficientStorage = "INSUFFICIENT_STORAGE"
	CodeInternal            = "INTERNAL"
	CodeNoConfig            = "NO_CONFIG"
	CodeConfigGeneration    = "CONFIG_GENERATION"
	CodeCatalogMismatch     = "CATALOG_MISMATCH"
	CodeGeneration          = "GENERATION"
	CodeNotInConfig         = "NOT_IN_CONFIG"
	CodeArtifactInConfig    = "ARTIFACT_IN_CONFIG"
	CodeTooManyCopies       = "TOO_MANY_COPIES"
	CodeInvalidDepotURL     = "INVALID_DEPOT_URL"
	CodeRepositoryInvalid   = "REPOSITORY_INVALID"
	CodeRepositoryConflict  = "REPOSITORY_CONFLICT"
	CodeTrustRootInvalid    = "TRUST_ROOT_INVALID"
	CodeInvalidSled         = "INVALID_SLED"
	CodeNotCoordinator      = "NOT_COORDINATOR"
)

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// entries is the one table. Order matters: ForError returns the first entry
// that matches, so an error that wraps several sentinels gets the entry
// listed first. The rules that fix the order:
//   - tuf.ErrTooLarge (413) before REPOSITORY_INVALID: a repository that
//     expands too far is also tuf.ErrInvalid;
//   - TRUST_ROOT_INVALID before tuf.ErrInvalid: a bad root document is a
//     tuf *Error too;
//   - REPOSITORY_INVALID before the store's write errors: a staged target
//     that fails its hash is the repository's fault, not the request's;
//   - INVALID_SLED before INVALID_DEPOT_URL: a sled with a bad URL wraps
//     both;
//   - the first entry of a code is its primary one (see Entry).
var entries = []Entry{
	{Code: CodeInvalidHash, Status: http.StatusBadRequest, Err: store.ErrInvalidDigest,
		Message: "the sha256 in the path must be 64 lowercase hex digits"},
	{Code: CodeTooLarge, Status: http.StatusRequestEntityTooLarge, Err: ErrTooLarge, Match: isMaxBytes,
		Message: "the body is larger than this route accepts; nothing was stored"},
	{Code: CodeTooLarge, Status: http.StatusRequestEntityTooLarge, Err: tuf.ErrTooLarge, Public: true,
		Message: "the repository archive expands beyond the coordinator's size limit; nothing was stored"},
	{Code: CodeTrustRootInvalid, Status: http.StatusBadRequest, Err: depot.ErrTrustRootInvalid, Public: true,
		Message: "the document is not a self-signed TUF root.json"},
	{Code: CodeRepositoryInvalid, Status: http.StatusBadRequest, Err: depot.ErrRepoInvalid, Public: true,
		Message: "the repository archive failed a check; nothing was recorded"},
	{Code: CodeRepositoryInvalid, Status: http.StatusBadRequest, Err: tuf.ErrInvalid, Public: true,
		Message: "the repository archive failed a check; nothing was recorded"},
	{Code: CodeRepositoryConflict, Status: http.StatusConflict, Err: depot.ErrRepoConflict, Public: true,
		Message: "the repository's system version or one of its artifacts is recorded with a different hash"},
	{Code: CodeInvalidSled, Status: http.StatusBadRequest, Err: depot.ErrInvalidSled, Public: true,
		Message: "the sled record has a bad id, URL or state"},
	{Code: CodeHashMismatch, Status: http.StatusBadRequest, Err: store.ErrHashMismatch,
		Message: "the body's sha256 differs from the sha256 in the path; nothing was stored: check that you are sending the file the hash names"},
	{Code: CodeTruncatedBody, Status: http.StatusBadRequest, Err: store.ErrSizeMismatch,
		Message: "the body's length differs from its Content-Length (truncated upload?); nothing was stored: retry the upload"},
	{Code: CodeBadRequest, Status: http.StatusBadRequest, Err: ErrBadRequest,
		Message: "the request is malformed"},
	{Code: CodeNotInConfig, Status: http.StatusBadRequest, Err: depot.ErrNotInConfig, Public: true,
		Message: "the sled's artifact config does not list this artifact; nothing was stored"},
	{Code: CodeInvalidDepotURL, Status: http.StatusBadRequest, Err: depot.ErrInvalidSource, Public: true,
		Message: "depot_base_url must be an http:// or https:// URL with a host"},
	{Code: CodeNotFound, Status: http.StatusNotFound, Err: store.ErrNotFound,
		Message: "no artifact with this sha256 is stored on this sled"},
	{Code: CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrCopyNotFound, Public: true,
		Message: "this sled has no copy job for this artifact"},
	{Code: CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrRepoNotFound, Public: true,
		Message: "no repository with this system version is recorded"},
	{Code: CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrTrustRootNotFound, Public: true,
		Message: "no trusted root has this id"},
	{Code: CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrSledNotFound, Public: true,
		Message: "no sled with this id is registered"},
	{Code: CodeNoConfig, Status: http.StatusNotFound, Err: depot.ErrNoConfig,
		Message: "this sled has never received an artifact config (it is unmanaged)"},
	{Code: CodeNotCoordinator, Status: http.StatusNotFound, Err: depot.ErrNotCoordinator,
		Message: "this daemon runs with --coordinator=false: the operator API is served by the rack's coordinator"},
	{Code: CodeMethodNotAllowed, Status: http.StatusMethodNotAllowed, Err: ErrMethodNotAllowed,
		Message: "this method is not allowed on this path; the Allow header lists the ones that are"},
	{Code: CodeBodyTimeout, Status: http.StatusRequestTimeout, Err: ErrBodyTimeout,
		Message: "no bytes of the body arrived for too long; nothing was stored: retry the upload"},
	{Code: CodeConfigGeneration, Status: http.StatusConflict, Err: depot.ErrConfigGeneration, Public: true,
		Message: "the config's generation is lower than the sled's, or equal with a different set"},
	{Code: CodeCatalogMismatch, Status: http.StatusConflict, Err: depot.ErrCatalogMismatch, Public: true,
		Message: "the config is from another catalog than the sled's; nothing changed"},
	{Code: CodeGeneration, Status: http.StatusConflict, Err: depot.ErrGeneration, Public: true,
		Message: "generation is missing or differs from the sled's config generation"},
	{Code: CodeArtifactInConfig, Status: http.StatusConflict, Err: depot.ErrArtifactInConfig, Public: true,
		Message: "the sled's artifact config lists this artifact; put a config without it first"},
	{Code: CodeTooManyCopies, Status: http.StatusTooManyRequests, Err: depot.ErrTooManyCopies, Public: true,
		RetryAfter: depot.RetryAfter,
		Message:    "the sled runs as many copies as it allows; retry after Retry-After seconds"},
	{Code: CodeNoMirrors, Status: http.StatusServiceUnavailable, Err: store.ErrNoMirrors,
		Message: "no mirror on this sled can serve the request; see GET /status"},
	{Code: CodeShuttingDown, Status: http.StatusServiceUnavailable, Err: store.ErrClosed,
		Message: "the daemon is shutting down; retry later"},
	{Code: CodeShuttingDown, Status: http.StatusServiceUnavailable, Err: depot.ErrClosed,
		Message: "the daemon is shutting down; retry later"},
	{Code: CodeInsufficientStorage, Status: http.StatusInsufficientStorage, Err: store.ErrNoSpace,
		Message: "every mirror on this sled is out of space; see GET /status"},
	{Code: CodeInternal, Status: http.StatusInternalServerError, Err: ErrInternal,
		Message: "internal error; the daemon logged the details under this request_id"},
}

// internal is the fallback entry for errors the table does not map.
var internal = entries[len(entries)-1]

// Entries returns a copy of the table, for tests that walk every entry.
func Entries() []Entry { return append([]Entry(nil), entries...) }

// ForError returns the entry for err and the message to send: the first
// entry whose Err is in err's chain (or whose Match accepts it), else the
// INTERNAL entry. Below 500 the message is the one err carries from
// WithMessage, else err's own text for a Public entry, else the entry's;
// from 500 up it is always the entry's.
func ForError(err error) (Entry, string) {
	e := internal
	for _, c := range entries {
		if errors.Is(err, c.Err) || (c.Match != nil && c.Match(err)) {
			e = c
			break
		}
	}
	if e.Status >= 500 {
		return e, e.Message
	}
	var pm *publicMessage
	switch {
	case errors.As(err, &pm):
		return e, pm.msg
	case e.Public:
		return e, err.Error()
	}
	return e, e.Message
}

// ForCode returns the primary entry of the given error_code.
func ForCode(code string) (Entry, bool) {
	for _, c := range entries {
		if c.Code == code {
			return c, true
		}
	}
	return Entry{}, false
}

// WithMessage wraps err with a message meant for the client, which replaces
// the entry's default message on 4xx answers. The message must describe
// the request, never the server's internals (paths, mirror names).
func WithMessage(err error, msg string) error { return &publicMessage{err: err, msg: msg} }

type publicMessage struct {
	err error
	msg string
}

func (p *publicMessage) Error() string { return p.err.Error() }
func (p *publicMessage) Unwrap() error { return p.err }
