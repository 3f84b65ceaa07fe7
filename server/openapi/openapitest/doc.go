// Package openapitest checks HTTP traffic against depotd's OpenAPI
// document (package openapi). Only tests import it: it links the OpenAPI
// and JSON-schema libraries the daemon does without.
//
// # Basics
//
// [Load] parses and validates the document; [ErrorCodes] lists its error
// codes. [NewValidator] builds a [Validator] whose [Validator.Check]
// validates one request and the response it got; [Validator.Transport]
// wraps an http.RoundTripper so that a test drives a live server through
// an ordinary client and collects every mismatch and every operation it
// exercised.
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
package openapitest
