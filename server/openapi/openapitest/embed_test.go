package openapitest_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"depot/server/openapi"
	"depot/server/openapi/openapitest"
)

var update = flag.Bool("update", false, "rewrite ../openapi.json from openapi.yaml")

// TestEmbeddedJSON: the JSON the daemon serves is openapi.yaml as the
// OpenAPI loader renders it; go generate in server/openapi rewrites it.
func TestEmbeddedJSON(t *testing.T) {
	doc, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("../openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("server/openapi/openapi.json is stale: run go generate ./server/openapi")
	}
}
