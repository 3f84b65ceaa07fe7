package api

import "time"

// PutResult is the body of a successful PUT /artifacts/{sha256}.
type PutResult struct {
	// Datasets is the number of mirrors configured on the sled.
	Datasets int `json:"datasets"`
	// SuccessfulWrites is the number of mirrors holding a verified copy.
	SuccessfulWrites int `json:"successful_writes"`
}

// ListResponse is the body of GET /artifacts.
type ListResponse struct {
	// Generation is the sled's config generation, nil while it is unmanaged.
	Generation *uint64 `json:"generation"`
	// List maps every artifact to the number of mirrors holding it.
	List map[Digest]int `json:"list"`
}

// StatusResponse is the body of GET /status.
type StatusResponse struct {
	Version    string         `json:"version"`
	Mirrors    []MirrorStatus `json:"mirrors"`
	Generation *uint64        `json:"generation"`
	// CatalogID is the catalog the config comes from ("" when it names
	// none, or while unmanaged).
	CatalogID string `json:"catalog_id,omitempty"`
	// ConfiguredArtifacts is the number of artifacts in the config (nil
	// while the sled is unmanaged).
	ConfiguredArtifacts *int `json:"configured_artifacts,omitempty"`
	// DepotURL is the base URL of the sled's repo-depot API, for peers.
	DepotURL      string          `json:"depot_url"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	Copies        CopyCounts      `json:"copies"`
	Reconciler    ReconcileStatus `json:"reconciler"`
	Scrub         ScrubStatus     `json:"scrub"`
	// Auth says how the operator API authenticates callers: "bearer
	// tokens", or "disabled (loopback)" in dev mode; absent without the
	// coordinator role.
	Auth string `json:"auth,omitempty"`
}

// List is the body of every listing of the operator API and of GET
// /copies: {"items": [...]}, never null.
type List[T any] struct {
	Items []T `json:"items"`
}

// Page is one page of a paginated list of the operator API, as omicron's
// ResultsPage: items, and next_page, the page_token for the rest (null
// on the last page).
type Page[T any] struct {
	Items    []T     `json:"items"`
	NextPage *string `json:"next_page"`
}

// CopyFromDepotRequest is the body of POST
// /artifacts/{sha256}/copy-from-depot.
type CopyFromDepotRequest struct {
	DepotBaseURL string `json:"depot_base_url"`
}

// SledPut is the body of PUT /v1/sleds/{id}.
type SledPut struct {
	ControlURL string `json:"control_url"`
	// DepotURL may be empty: the coordinator then asks the sled's /status.
	DepotURL string `json:"depot_url,omitempty"`
}

// Empty is the body {} of answers that carry nothing (202s).
type Empty struct{}

// ErrorBody is the body of every error response (except to HEAD, which has
// no body: the code is then in the ErrorCodeHeader header).
type ErrorBody struct {
	RequestID string `json:"request_id"`
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// Headers beside the body.
const (
	// RequestIDHeader carries the request id both ways: a client may send
	// one, the server always answers with the one it logged.
	RequestIDHeader = "X-Request-Id"
	// ErrorCodeHeader repeats ErrorBody.ErrorCode, so that error answers to
	// HEAD requests, which have no body, can be mapped back too.
	ErrorCodeHeader = "X-Error-Code"
	// RetryAfterHeader is set (in seconds) on answers whose entry has a
	// RetryAfter, such as 429 TOO_MANY_COPIES.
	RetryAfterHeader = "Retry-After"
)

// MaxWait caps the wait parameter of long-polls (?wait=30s); a longer
// wait is cut to it.
const MaxWait = 5 * time.Minute
