package api

import "encoding/json"

// Headers of authentication.
const (
	AuthorizationHeader   = "Authorization"
	WWWAuthenticateHeader = "WWW-Authenticate"
)

// AuditRecord is one record of the audit log, decoded. The hash covers
// the record's stored bytes (package depot/auditchain), so verify the
// line as received (AuditPage.Items), never a re-encoded AuditRecord.
type AuditRecord struct {
	Seq       uint64       `json:"seq"`
	Time      string       `json:"time"`
	Actor     string       `json:"actor"`
	Source    string       `json:"source"`
	RequestID string       `json:"request_id"`
	Action    string       `json:"action"`
	Target    string       `json:"target"`
	Outcome   AuditOutcome `json:"outcome"`
	Prev      string       `json:"prev"`
	Hash      string       `json:"hash"`
}

// AuditOutcome is the answer a request got.
type AuditOutcome struct {
	Status    int    `json:"status"`
	ErrorCode string `json:"error_code"`
}

// AuditPage is the body of GET /v1/audit: records with seq > since, in
// order, each exactly as stored (with its hash), and the seq of the last
// record in the log.
type AuditPage struct {
	Items   []json.RawMessage `json:"items"`
	HeadSeq uint64            `json:"head_seq"`
}

// TokenCreateRequest is the body of POST /v1/tokens.
type TokenCreateRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Token is a token without its secret (GET /v1/tokens).
type Token struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	Source      string `json:"source"` // "api" or "file"
	TimeCreated string `json:"time_created,omitempty"`
	CreatedBy   string `json:"created_by,omitempty"`
}

// TokenCreated is the answer to POST /v1/tokens: the token and its secret,
// which is shown this once and never stored.
type TokenCreated struct {
	Token
	Secret string `json:"secret"`
}
