// Package openapi holds the OpenAPI 3 document of depotd's three HTTP APIs
// (the sled API, the operator API of the coordinator, and the read-only
// repo-depot API) and checks live traffic against it.
//
// The document is openapi.yaml in this directory, embedded in the binary.
// It is the machine-readable form of DESIGN.md sections 2 and 3: every
// route with its operationId, parameters, JSON schemas, and every error
// status with the common error body {"request_id", "error_code",
// "message"}.
//
// # Basics
//
// [Load] parses and validates the document; [JSON] renders it for
// GET /openapi.json and [Handler] serves it. [NewValidator] builds a
// [Validator] whose [Validator.Check] validates one request and the
// response it got; [Validator.Transport] wraps an http.RoundTripper so that
// a test drives a live server through an ordinary client and collects
// every mismatch and every operation it exercised.
//
// # Caveats
//
// The validator matches requests on their path only: the document's
// server URLs name the default listen addresses, and the sled, operator
// and repo-depot paths do not overlap, so one Validator checks traffic to
// any of the daemon's listeners.
//
// Raw bodies (application/octet-stream, multipart/byteranges) are never
// validated or buffered: their status and headers are checked, their
// bytes are not. The request Content-Type of raw uploads is not checked
// either (curl -T sends none).
//
// A request that itself violates the document (a malformed sha256, a
// missing query parameter, a body of the wrong shape) is not an error in
// itself: the server must then answer with a documented 4xx and a valid
// error body. Only a success or 5xx answer to such a request is reported.
package openapi
