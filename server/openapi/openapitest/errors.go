package openapitest

import "errors"

// Errors of Validator.Check (and of the CheckingTransport's Errors), to
// tell with errors.Is which kind of mismatch a test hit.
var (
	// ErrUndocumented: the request's path is not in the document, or the
	// path is but its method is not.
	ErrUndocumented = errors.New("no documented operation")

	// ErrMismatch: the request matched an operation, but the response (or
	// the request, answered with other than a documented 4xx) differs from
	// the document: undocumented status, missing or malformed header,
	// wrong Content-Type, body that does not match the schema.
	ErrMismatch = errors.New("does not match the document")
)
