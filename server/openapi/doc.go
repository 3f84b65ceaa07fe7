// Package openapi holds the OpenAPI 3 document of depotd's three HTTP APIs
// (the sled API, the operator API of the coordinator, and the read-only
// repo-depot API) and serves it.
//
// The document is openapi.yaml in this directory, embedded in the binary.
// It is the machine-readable form of DESIGN.md sections 2 and 3: every
// route with its operationId, parameters, JSON schemas, and every error
// status with the common error body {"request_id", "error_code",
// "message"}.
//
// [JSON] returns it as JSON (openapi.json, generated from the YAML by go
// generate) and [Handler] serves that for GET /openapi.json. Parsing the
// document and checking live traffic against it is the job of the
// test-only package openapitest, so the daemon links no OpenAPI library.
package openapi
