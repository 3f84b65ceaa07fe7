package openapitest

import (
	"embed"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
)

// omicronDocs are omicron's published API documents, as the README beside
// them says (source, commit, file names).
//
//go:embed testdata/omicron/*.json
var omicronDocs embed.FS

// omicron's documents, by the name LoadOmicron takes. Depot's document
// names the same ones in each operation's x-omicron-document.
const (
	OmicronSledAgent = "sled-agent" // the sled-agent API: artifact config, list, put, copy-from-depot
	OmicronRepoDepot = "repo-depot" // the repo-depot API: GET /artifact/sha256/{sha256}
	OmicronNexus     = "nexus"      // Nexus's external API: /v1/system/update/...
)

// OmicronDocuments lists the names LoadOmicron accepts.
func OmicronDocuments() []string {
	return []string{OmicronSledAgent, OmicronRepoDepot, OmicronNexus}
}

// LoadOmicron parses one of omicron's documents (OmicronSledAgent, ...)
// and validates it. Each call returns a new *openapi3.T.
func LoadOmicron(name string) (*openapi3.T, error) {
	data, err := omicronDocs.ReadFile("testdata/omicron/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("openapi: no omicron document %q: %w", name, err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("openapi: load omicron's %s.json: %w", name, err)
	}
	// Some schemas that no operation Depot has uses carry patterns with
	// Perl look-ahead, which Go's regexp lacks: do not compile patterns
	// here (the ones Depot's operations meet compile when they are used).
	if err := doc.Validate(loader.Context, openapi3.DisableSchemaPatternValidation()); err != nil {
		return nil, fmt.Errorf("openapi: validate omicron's %s.json: %w", name, err)
	}
	return doc, nil
}
