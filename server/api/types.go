package api

import "depot/store"

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
	List map[store.Digest]int `json:"list"`
}

// StatusResponse is the body of GET /status.
type StatusResponse struct {
	Version    string               `json:"version"`
	Mirrors    []store.MirrorStatus `json:"mirrors"`
	Generation *uint64              `json:"generation"`
	// DepotURL is the base URL of the sled's repo-depot API, for peers.
	DepotURL      string  `json:"depot_url"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

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
)
