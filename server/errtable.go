package server

import (
	"errors"
	"net/http"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/store"
	"depot/tuf"
)

// This file is the one table that maps domain errors (depot, store, tuf)
// and the HTTP layer's own (api.ErrTooLarge, ...) to a status, an
// error_code and a message. The client never sees it: it maps a code back
// to the api package's sentinel for that code.

// errorEntry maps one failure to its HTTP status and error_code. Several
// entries may share a code (NOT_FOUND covers artifacts, copy jobs,
// repositories, trust roots and sleds).
type errorEntry struct {
	Code   string
	Status int
	// Err is the sentinel the server matches with errors.Is.
	Err error
	// Match, if set, also matches errors that are not Err (for error types
	// such as *http.MaxBytesError, which errors.Is cannot see).
	Match func(error) bool
	// Message is what the client is told when the request gives no better
	// one (see withMessage and Public); for 4xx it says what to do about it.
	Message string
	// Public, for a 4xx entry, sends the error's own text as the message
	// instead of Message: the depot and tuf packages write their errors
	// for operators (which generation, which check, which artifact).
	Public bool
	// RetryAfter, if positive, is sent as the Retry-After header (seconds).
	RetryAfter time.Duration
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// errorTable is the one table. Order matters: forError returns the first entry
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
//   - SERVER_BUSY (store.ErrBusy) before NO_MIRRORS: a write that failed
//     for lack of descriptors on one mirror and for a disk on the other
//     is retried, not reported as a dead sled.
var errorTable = []errorEntry{
	{Code: api.CodeInvalidHash, Status: http.StatusBadRequest, Err: store.ErrInvalidDigest,
		Message: "the sha256 in the path must be 64 hex digits"},
	{Code: api.CodeTooLarge, Status: http.StatusRequestEntityTooLarge, Err: api.ErrTooLarge, Match: isMaxBytes,
		Message: "the body is larger than this route accepts; nothing was stored"},
	{Code: api.CodeTooLarge, Status: http.StatusRequestEntityTooLarge, Err: depot.ErrCatalogTooLarge,
		Message: "the repository's record is larger than the shared catalog (etcd) takes in one request (1.5 MiB); split the repository, or raise etcd's --max-request-bytes"},
	{Code: api.CodeTooLarge, Status: http.StatusRequestEntityTooLarge, Err: tuf.ErrTooLarge, Public: true,
		Message: "the repository archive expands beyond the coordinator's size limit; nothing was stored"},
	{Code: api.CodeTrustRootInvalid, Status: http.StatusBadRequest, Err: depot.ErrTrustRootInvalid, Public: true,
		Message: "the document is not a self-signed TUF root.json"},
	{Code: api.CodeRepositoryInvalid, Status: http.StatusBadRequest, Err: depot.ErrRepoInvalid, Public: true,
		Message: "the repository archive failed a check; nothing was recorded"},
	{Code: api.CodeRepositoryInvalid, Status: http.StatusBadRequest, Err: tuf.ErrInvalid, Public: true,
		Message: "the repository archive failed a check; nothing was recorded"},
	{Code: api.CodeRepositoryConflict, Status: http.StatusConflict, Err: depot.ErrRepoConflict, Public: true,
		Message: "the repository's system version or one of its artifacts is recorded with a different hash"},
	{Code: api.CodeInvalidSled, Status: http.StatusBadRequest, Err: depot.ErrInvalidSled, Public: true,
		Message: "the sled record has a bad id, URL or state"},
	{Code: api.CodeHashMismatch, Status: http.StatusBadRequest, Err: store.ErrHashMismatch,
		Message: "the body's sha256 differs from the sha256 in the path; nothing was stored: check that you are sending the file the hash names"},
	{Code: api.CodeTruncatedBody, Status: http.StatusBadRequest, Err: store.ErrSizeMismatch,
		Message: "the body's length differs from its Content-Length (truncated upload?); nothing was stored: retry the upload"},
	{Code: api.CodeBadRequest, Status: http.StatusBadRequest, Err: api.ErrBadRequest,
		Message: "the request is malformed"},
	{Code: api.CodeNotInConfig, Status: http.StatusBadRequest, Err: depot.ErrNotInConfig, Public: true,
		Message: "the sled's artifact config does not list this artifact; nothing was stored"},
	{Code: api.CodeInvalidDepotURL, Status: http.StatusBadRequest, Err: depot.ErrInvalidSource, Public: true,
		Message: "depot_base_url must be scheme://host:port (http or https, nothing else) and an allowed source"},
	{Code: api.CodeNotFound, Status: http.StatusNotFound, Err: store.ErrNotFound,
		Message: "no artifact with this sha256 is stored on this sled"},
	{Code: api.CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrCopyNotFound, Public: true,
		Message: "this sled has no copy job for this artifact"},
	{Code: api.CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrRepoNotFound, Public: true,
		Message: "no repository with this system version is recorded"},
	{Code: api.CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrTrustRootNotFound, Public: true,
		Message: "no trusted root has this id"},
	{Code: api.CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrSledNotFound, Public: true,
		Message: "no sled with this id is registered"},
	{Code: api.CodeNoConfig, Status: http.StatusNotFound, Err: depot.ErrNoConfig,
		Message: "this sled has never received an artifact config (it is unmanaged)"},
	{Code: api.CodeUnauthenticated, Status: http.StatusUnauthorized, Err: api.ErrUnauthenticated,
		Message: "the operator API needs Authorization: Bearer <token>"},
	{Code: api.CodeForbidden, Status: http.StatusForbidden, Err: api.ErrForbidden,
		Message: "your role does not allow this request"},
	{Code: api.CodeAuthRateLimited, Status: http.StatusTooManyRequests, Err: api.ErrAuthRateLimited,
		RetryAfter: time.Second,
		Message:    "too many failed authentications from this address; retry after Retry-After seconds"},
	{Code: api.CodeTokenExists, Status: http.StatusConflict, Err: depot.ErrTokenExists, Public: true,
		Message: "a token with this name exists"},
	{Code: api.CodeNotFound, Status: http.StatusNotFound, Err: depot.ErrTokenNotFound, Public: true,
		Message: "no token with this name is recorded"},
	{Code: api.CodeBadRequest, Status: http.StatusBadRequest, Err: depot.ErrInvalidToken, Public: true,
		Message: "the token request has a bad name or role"},
	{Code: api.CodeNotCoordinator, Status: http.StatusNotFound, Err: depot.ErrNotCoordinator,
		Message: "this daemon runs with --coordinator=false: the operator API is served by the rack's coordinator"},
	{Code: api.CodeMethodNotAllowed, Status: http.StatusMethodNotAllowed, Err: api.ErrMethodNotAllowed,
		Message: "this method is not allowed on this path; the Allow header lists the ones that are"},
	{Code: api.CodeBodyTimeout, Status: http.StatusRequestTimeout, Err: api.ErrBodyTimeout,
		Message: "no bytes of the body arrived for too long; nothing was stored: retry the upload"},
	{Code: api.CodeConfigGeneration, Status: http.StatusConflict, Err: depot.ErrConfigGeneration, Public: true,
		Message: "the config's generation is lower than the sled's, or equal with a different set"},
	{Code: api.CodeCatalogMismatch, Status: http.StatusConflict, Err: depot.ErrCatalogMismatch, Public: true,
		Message: "the config is from another catalog than the sled's; nothing changed"},
	{Code: api.CodeGeneration, Status: http.StatusConflict, Err: depot.ErrGeneration, Public: true,
		Message: "generation is missing or differs from the sled's config generation"},
	{Code: api.CodeArtifactInConfig, Status: http.StatusConflict, Err: depot.ErrArtifactInConfig, Public: true,
		Message: "the sled's artifact config lists this artifact; put a config without it first"},
	{Code: api.CodeTooManyCopies, Status: http.StatusTooManyRequests, Err: depot.ErrTooManyCopies, Public: true,
		RetryAfter: depot.RetryAfter,
		Message:    "the sled's copy queue is full; retry after Retry-After seconds"},
	{Code: api.CodeServerBusy, Status: http.StatusServiceUnavailable, Err: depot.ErrServerBusy,
		RetryAfter: depot.RetryAfter,
		Message:    "every write slot of this daemon is taken (--max-concurrent-writes); retry after Retry-After seconds"},
	{Code: api.CodeSourceNotFound, Status: http.StatusBadGateway, Err: depot.ErrSourceNotFound,
		Message: "the copy source answered that it does not hold this artifact; nothing was queued: copy from a sled that holds it"},
	{Code: api.CodeSourceUnavailable, Status: http.StatusBadGateway, Err: depot.ErrSourceUnavailable,
		Message: "the copy source could not be asked for this artifact (unreachable, too slow, or an unexpected answer); nothing was queued: retry, or copy from another sled"},
	{Code: api.CodeServerBusy, Status: http.StatusServiceUnavailable, Err: store.ErrBusy,
		RetryAfter: time.Second,
		Message:    "the daemon is out of file descriptors or memory for this request; its mirrors are healthy: retry after Retry-After seconds"},
	{Code: api.CodeCatalogUnavailable, Status: http.StatusServiceUnavailable, Err: depot.ErrCatalogUnavailable,
		RetryAfter: depot.RetryAfter,
		Message:    "the coordinators' catalog (etcd) has no quorum or cannot be reached; nothing was changed: retry once it is back (the sled and depot APIs keep serving)"},
	{Code: api.CodeNoMirrors, Status: http.StatusServiceUnavailable, Err: store.ErrNoMirrors,
		Message: "no mirror on this sled can serve the request; see GET /status"},
	{Code: api.CodeShuttingDown, Status: http.StatusServiceUnavailable, Err: store.ErrClosed,
		Message: "the daemon is shutting down; retry later"},
	{Code: api.CodeShuttingDown, Status: http.StatusServiceUnavailable, Err: depot.ErrClosed,
		Message: "the daemon is shutting down; retry later"},
	{Code: api.CodeInsufficientStorage, Status: http.StatusInsufficientStorage, Err: store.ErrNoSpace,
		Message: "every mirror on this sled is out of space; see GET /status"},
	{Code: api.CodeInternal, Status: http.StatusInternalServerError, Err: api.ErrInternal,
		Message: "internal error; the daemon logged the details under this request_id"},
}

// internal is the fallback entry for errors the table does not map.
var internalEntry = errorTable[len(errorTable)-1]

// errorEntries returns a copy of the table, for tests that walk every entry.
func errorEntries() []errorEntry { return append([]errorEntry(nil), errorTable...) }

// forError returns the entry for err and the message to send: the first
// entry whose Err is in err's chain (or whose Match accepts it), else the
// INTERNAL entry. Below 500 the message is the one err carries from
// withMessage, else err's own text for a Public entry, else the entry's;
// from 500 up it is always the entry's.
func forError(err error) (errorEntry, string) {
	e := internalEntry
	for _, c := range errorTable {
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

// withMessage wraps err with a message meant for the client, which replaces
// the entry's default message on 4xx answers. The message must describe
// the request, never the server's internals (paths, mirror names).
func withMessage(err error, msg string) error { return &publicMessage{err: err, msg: msg} }

type publicMessage struct {
	err error
	msg string
}

func (p *publicMessage) Error() string { return p.err.Error() }
func (p *publicMessage) Unwrap() error { return p.err }
