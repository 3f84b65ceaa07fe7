package api

import (
	"errors"
	"slices"
)

// Codes of the error answers (ErrorBody.ErrorCode and ErrorCodeHeader).
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
	CodeSourceUnavailable   = "SOURCE_UNAVAILABLE"
	CodeSourceNotFound      = "SOURCE_NOT_FOUND"
	CodeRepositoryInvalid   = "REPOSITORY_INVALID"
	CodeRepositoryConflict  = "REPOSITORY_CONFLICT"
	CodeTrustRootInvalid    = "TRUST_ROOT_INVALID"
	CodeInvalidSled         = "INVALID_SLED"
	CodeNotCoordinator      = "NOT_COORDINATOR"
	CodeUnauthenticated     = "UNAUTHENTICATED"
	CodeForbidden           = "FORBIDDEN"
	CodeAuthRateLimited     = "AUTH_RATE_LIMITED"
	CodeTokenExists         = "TOKEN_EXISTS"
	CodeServerBusy          = "SERVER_BUSY"
	CodeCatalogUnavailable  = "CATALOG_UNAVAILABLE"
)

// One sentinel per error code. The server returns the HTTP-layer ones
// (ErrTooLarge, ErrBodyTimeout, ErrBadRequest, ErrMethodNotAllowed,
// ErrInternal), wrapped, from its handlers; the client's errors unwrap to
// the sentinel of the code they carry, so errors.Is(err,
// api.ErrHashMismatch) holds for a HASH_MISMATCH answer.
var (
	ErrInvalidHash         = errors.New("invalid hash")
	ErrHashMismatch        = errors.New("hash mismatch")
	ErrTruncatedBody       = errors.New("truncated body")
	ErrBadRequest          = errors.New("bad request")
	ErrNotFound            = errors.New("not found")
	ErrMethodNotAllowed    = errors.New("method not allowed")
	ErrBodyTimeout         = errors.New("request body stalled")
	ErrTooLarge            = errors.New("request body too large")
	ErrNoMirrors           = errors.New("no mirror can serve")
	ErrShuttingDown        = errors.New("shutting down")
	ErrInsufficientStorage = errors.New("insufficient storage")
	// ErrInternal: anything the server's table does not map. Its text
	// never reaches the client.
	ErrInternal           = errors.New("internal error")
	ErrNoConfig           = errors.New("no artifact config")
	ErrConfigGeneration   = errors.New("config generation conflict")
	ErrCatalogMismatch    = errors.New("config from another catalog")
	ErrGeneration         = errors.New("generation mismatch")
	ErrNotInConfig        = errors.New("artifact not in config")
	ErrArtifactInConfig   = errors.New("artifact in config")
	ErrTooManyCopies      = errors.New("too many copies")
	ErrInvalidDepotURL    = errors.New("invalid depot URL")
	ErrSourceUnavailable  = errors.New("copy source unavailable")
	ErrSourceNotFound     = errors.New("copy source does not hold the artifact")
	ErrRepositoryInvalid  = errors.New("repository invalid")
	ErrRepositoryConflict = errors.New("repository conflict")
	ErrTrustRootInvalid   = errors.New("trust root invalid")
	ErrInvalidSled        = errors.New("invalid sled")
	ErrNotCoordinator     = errors.New("not the coordinator")
	// ErrUnauthenticated: no credentials, or credentials that identify
	// nobody (unknown or revoked token).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the identity's role is below the one the route needs.
	ErrForbidden = errors.New("forbidden")
	// ErrAuthRateLimited: too many failed authentications from this
	// source address; retry after Retry-After.
	ErrAuthRateLimited = errors.New("too many failed authentications")
	ErrTokenExists     = errors.New("token exists")
	// ErrServerBusy: every write slot of the daemon is taken; retry after
	// Retry-After.
	ErrServerBusy = errors.New("server busy")
	// ErrCatalogUnavailable: the coordinator's catalog (etcd) has no
	// quorum or cannot be reached; nothing was changed.
	ErrCatalogUnavailable = errors.New("catalog unavailable")
)

// codeErrs maps every code to its sentinel.
var codeErrs = map[string]error{
	CodeInvalidHash:         ErrInvalidHash,
	CodeHashMismatch:        ErrHashMismatch,
	CodeTruncatedBody:       ErrTruncatedBody,
	CodeBadRequest:          ErrBadRequest,
	CodeNotFound:            ErrNotFound,
	CodeMethodNotAllowed:    ErrMethodNotAllowed,
	CodeBodyTimeout:         ErrBodyTimeout,
	CodeTooLarge:            ErrTooLarge,
	CodeNoMirrors:           ErrNoMirrors,
	CodeShuttingDown:        ErrShuttingDown,
	CodeInsufficientStorage: ErrInsufficientStorage,
	CodeInternal:            ErrInternal,
	CodeNoConfig:            ErrNoConfig,
	CodeConfigGeneration:    ErrConfigGeneration,
	CodeCatalogMismatch:     ErrCatalogMismatch,
	CodeGeneration:          ErrGeneration,
	CodeNotInConfig:         ErrNotInConfig,
	CodeArtifactInConfig:    ErrArtifactInConfig,
	CodeTooManyCopies:       ErrTooManyCopies,
	CodeInvalidDepotURL:     ErrInvalidDepotURL,
	CodeSourceUnavailable:   ErrSourceUnavailable,
	CodeSourceNotFound:      ErrSourceNotFound,
	CodeRepositoryInvalid:   ErrRepositoryInvalid,
	CodeRepositoryConflict:  ErrRepositoryConflict,
	CodeTrustRootInvalid:    ErrTrustRootInvalid,
	CodeInvalidSled:         ErrInvalidSled,
	CodeNotCoordinator:      ErrNotCoordinator,
	CodeUnauthenticated:     ErrUnauthenticated,
	CodeForbidden:           ErrForbidden,
	CodeAuthRateLimited:     ErrAuthRateLimited,
	CodeTokenExists:         ErrTokenExists,
	CodeServerBusy:          ErrServerBusy,
	CodeCatalogUnavailable:  ErrCatalogUnavailable,
}

// ErrForCode returns the sentinel of an error_code, or nil for a code this
// package does not know.
func ErrForCode(code string) error { return codeErrs[code] }

// Codes returns every error code, sorted.
func Codes() []string {
	out := make([]string, 0, len(codeErrs))
	for c := range codeErrs {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
