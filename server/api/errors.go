package api

import (
	"errors"
	"net/http"

	"depot/store"
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

// Entry maps one domain failure to its HTTP status and error_code.
type Entry struct {
	Code   string
	Status int
	// Err is the sentinel: the server matches it with errors.Is, and the
	// client's *APIError unwraps to it.
	Err error
	// Match, if set, also matches errors that are not Err (for error types
	// such as *http.MaxBytesError, which errors.Is cannot see).
	Match func(error) bool
	// Message is what the client is told when the request gives no better
	// one (see WithMessage); for 4xx it says what to do about it.
	Message string
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
)

// entries is the one table. Order matters: ForError returns the first entry
// that matches, so more specific errors go first. Later features (config
// generations, copies, repositories) add their rows here.
var entries = []Entry{
	{Code: CodeInvalidHash, Status: http.StatusBadRequest, Err: store.ErrInvalidDigest,
		Message: "the sha256 in the path must be 64 lowercase hex digits"},
	{Code: CodeHashMismatch, Status: http.StatusBadRequest, Err: store.ErrHashMismatch,
		Message: "the body's sha256 differs from the sha256 in the path; nothing was stored: check that you are sending the file the hash names"},
	{Code: CodeTruncatedBody, Status: http.StatusBadRequest, Err: store.ErrSizeMismatch,
		Message: "the body's length differs from its Content-Length (truncated upload?); nothing was stored: retry the upload"},
	{Code: CodeBadRequest, Status: http.StatusBadRequest, Err: ErrBadRequest,
		Message: "the request is malformed"},
	{Code: CodeNotFound, Status: http.StatusNotFound, Err: store.ErrNotFound,
		Message: "no artifact with this sha256 is stored on this sled"},
	{Code: CodeMethodNotAllowed, Status: http.StatusMethodNotAllowed, Err: ErrMethodNotAllowed,
		Message: "this method is not allowed on this path; the Allow header lists the ones that are"},
	{Code: CodeBodyTimeout, Status: http.StatusRequestTimeout, Err: ErrBodyTimeout,
		Message: "no bytes of the body arrived for too long; nothing was stored: retry the upload"},
	{Code: CodeTooLarge, Status: http.StatusRequestEntityTooLarge, Err: ErrTooLarge,
		Match: func(err error) bool {
			var mbe *http.MaxBytesError
			return errors.As(err, &mbe)
		},
		Message: "the body is larger than this sled accepts (--max-artifact-size); nothing was stored"},
	{Code: CodeNoMirrors, Status: http.StatusServiceUnavailable, Err: store.ErrNoMirrors,
		Message: "no mirror on this sled can serve the request; see GET /status"},
	{Code: CodeShuttingDown, Status: http.StatusServiceUnavailable, Err: store.ErrClosed,
		Message: "the sled is shutting down; retry later"},
	{Code: CodeInsufficientStorage, Status: http.StatusInsufficientStorage, Err: store.ErrNoSpace,
		Message: "every mirror on this sled is out of space; see GET /status"},
	{Code: CodeInternal, Status: http.StatusInternalServerError, Err: ErrInternal,
		Message: "internal error; the sled logged the details under this request_id"},
}

// internal is the fallback entry for errors the table does not map.
var internal = entries[len(entries)-1]

// Entries returns a copy of the table, for tests that walk every entry.
func Entries() []Entry { return append([]Entry(nil), entries...) }

// ForError returns the entry for err and the message to send: the first
// entry whose Err is in err's chain (or whose Match accepts it), else the
// INTERNAL entry. The message is the entry's, unless err carries one from
// WithMessage and the status is below 500.
func ForError(err error) (Entry, string) {
	e := internal
	for _, c := range entries {
		if errors.Is(err, c.Err) || (c.Match != nil && c.Match(err)) {
			e = c
			break
		}
	}
	msg := e.Message
	var pm *publicMessage
	if e.Status < 500 && errors.As(err, &pm) {
		msg = pm.msg
	}
	return e, msg
}

// ForCode returns the entry with the given error_code.
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
