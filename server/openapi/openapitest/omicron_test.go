package openapitest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"

	"depot/server/openapi/openapitest"
)

// TestOmicron_Files: the embedded documents are the ones the README
// names (omicron's file names carry the start of their sha256).
func TestOmicron_Files(t *testing.T) {
	readme, err := os.ReadFile("testdata/omicron/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range openapitest.OmicronDocuments() {
		data, err := os.ReadFile("testdata/omicron/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		if !strings.Contains(string(readme), "`"+h+"`") || !strings.Contains(string(readme), "-"+h[:6]+".json") {
			t.Errorf("%s.json (sha256 %s) is not the file the README names", name, h)
		}
	}
}

// omicronOps is every operation of omicron's documents that Depot serves:
// what Nexus's replication task calls on a sled and a sled on its peers,
// and the external update API.
var omicronOps = map[string][]string{
	openapitest.OmicronSledAgent: {"artifact_config_get", "artifact_config_put", "artifact_list", "artifact_put", "artifact_copy_from_depot"},
	openapitest.OmicronRepoDepot: {"artifact_get_by_sha256"},
	openapitest.OmicronNexus: {
		"system_update_repository_upload", "system_update_repository_list", "system_update_repository_view",
		"system_update_trust_root_create", "system_update_trust_root_list", "system_update_trust_root_view",
		"system_update_trust_root_delete",
	},
}

// onlyOnRequest lists statuses of omicron operations that Depot sends only
// when the request carries a header omicron's document does not have
// (and its generated clients never send): Range (206) and If-None-Match
// or If-Range (304) on a blob.
var onlyOnRequest = map[string]bool{
	"artifact_get_by_sha256 206": true,
	"artifact_get_by_sha256 304": true,
}

// TestOmicron_Markers: every operation of Depot's document is either
// omicron's (x-omicron-document, at the same method, path and
// operationId in that document, with only statuses that document allows)
// or a Depot extension (x-depot-extension: true), never both; and every
// omicron operation Depot serves is marked.
func TestOmicron_Markers(t *testing.T) {
	depot := load(t)
	docs := map[string]map[string]string{} // name → "METHOD path" → operationId
	statuses := map[string]map[string][]string{}
	for _, name := range openapitest.OmicronDocuments() {
		doc, err := openapitest.LoadOmicron(name)
		if err != nil {
			t.Fatal(err)
		}
		docs[name], statuses[name] = map[string]string{}, map[string][]string{}
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				docs[name][method+" "+path] = op.OperationID
				for code := range op.Responses.Map() {
					statuses[name][op.OperationID] = append(statuses[name][op.OperationID], code)
				}
			}
		}
	}
	marked := map[string][]string{}
	for path, item := range depot.Paths.Map() {
		for method, op := range item.Operations() {
			name := op.OperationID + " (" + method + " " + path + ")"
			doc, isOmicron := op.Extensions["x-omicron-document"].(string)
			ext, isExt := op.Extensions["x-depot-extension"].(bool)
			switch {
			case isOmicron && isExt:
				t.Errorf("%s: both x-omicron-document and x-depot-extension", name)
			case isExt && ext:
				continue
			case !isOmicron:
				t.Errorf("%s: neither x-omicron-document nor x-depot-extension: true", name)
				continue
			}
			ops, ok := docs[doc]
			if !ok {
				t.Errorf("%s: x-omicron-document %q is not one of %v", name, doc, openapitest.OmicronDocuments())
				continue
			}
			if got := ops[method+" "+path]; got != op.OperationID {
				t.Errorf("%s: omicron's %s has %q at %s %s", name, doc, got, method, path)
				continue
			}
			marked[doc] = append(marked[doc], op.OperationID)
			for code := range op.Responses.Map() {
				allowed := statuses[doc][op.OperationID]
				if onlyOnRequest[op.OperationID+" "+code] {
					continue
				}
				if !slices.Contains(allowed, code) && !slices.Contains(allowed, code[:1]+"XX") {
					t.Errorf("%s: Depot documents status %s, omicron's %s allows only %v", name, code, doc, allowed)
				}
			}
		}
	}
	for doc, want := range omicronOps {
		got := marked[doc]
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("operations marked as omicron's %s: %v, want %v", doc, got, want)
		}
	}
}
