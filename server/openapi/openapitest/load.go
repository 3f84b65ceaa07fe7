package openapitest

import (
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"

	"depot/server/openapi"
)

// Load parses the embedded document and validates it (doc.Validate). Each
// call returns a new *openapi3.T, which the caller may modify. Safe for
// concurrent use.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.YAML())
	if err != nil {
		return nil, fmt.Errorf("openapi: load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: validate openapi.yaml: %w", err)
	}
	return doc, nil
}

// ErrorCodes returns the error codes the document lists (the enum of its
// ErrorCode schema), in document order: a test of the server's error table
// can check that both list the same codes.
func ErrorCodes() ([]string, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	ref := doc.Components.Schemas["ErrorCode"]
	if ref == nil || ref.Value == nil {
		return nil, fmt.Errorf("openapi: the document has no ErrorCode schema")
	}
	codes := make([]string, 0, len(ref.Value.Enum))
	for _, e := range ref.Value.Enum {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("openapi: ErrorCode enum holds %v (%T), not a string", e, e)
		}
		codes = append(codes, s)
	}
	return codes, nil
}
