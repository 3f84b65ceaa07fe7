package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/zip"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// TestOperator_UploadRepo_Oxide uploads the tufaceous-built fixture and v2
// and hostile repositories through the HTTP API, checking every exchange
// against the OpenAPI document.
func TestOperator_UploadRepo_Oxide(t *testing.T) {
	t.Parallel()
	_, ct, hc := validating(t)
	e := newEnv(t, withCoordinator(), withTransport(ct), withTUF(tuf.Options{AllowExpired: true}))
	put := func(name string, archive []byte) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("PUT", e.opURL+"/v1/system/update/repositories?file_name="+name, bytes.NewReader(archive))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	data, err := os.ReadFile("../tuf/testdata/tufaceous-v1-fake.zip")
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	rc, _ := zr.Open("repo/metadata/1.root.json")
	root, _ := io.ReadAll(rc)
	rc.Close()
	e.trust(t, root)
	resp, body := put("v1-fake.zip", data)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var res struct {
		Repo struct {
			Format    string `json:"format"`
			Artifacts []struct {
				Kind, Name, Board, Sign string
				Source                  *struct{ Kind, Path string }
			} `json:"artifacts"`
		} `json:"repo"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	parts, boards := 0, 0
	for _, a := range res.Repo.Artifacts {
		if a.Source != nil {
			parts++
		}
		if a.Board != "" {
			boards++
		}
	}
	// 14 parts of 6 composites; 12 Hubris images (3 SP, 3 bootloaders, 6 RoT).
	if res.Repo.Format != "tufaceous-v1" || len(res.Repo.Artifacts) != 22 || parts != 14 || boards != 12 {
		t.Errorf("format %q, %d artifacts, %d parts, %d with a board", res.Repo.Format, len(res.Repo.Artifacts), parts, boards)
	}

	// v2: tags on the wire.
	b := tuftest.NewBuilder(t)
	b.AddTarget("sp.zip", []byte("sp"))
	b.SetManifestV2("2.0.0", []tuftest.ArtifactV2{{TargetName: "sp.zip", Version: "2.0.0", Tags: map[string]string{"kind": "sp", "sp_board": "cosmo-a"}}})
	e.trust(t, b.RootJSON())
	resp, body = put("v2.zip", b.Zip())
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"tags":{"kind":"sp","sp_board":"cosmo-a"}`) || !strings.Contains(string(body), `"board":"cosmo-a"`) {
		t.Errorf("v2 upload: %d %s", resp.StatusCode, body)
	}

	// A kind rule: 400 naming it; a conflict: 409 naming both sides.
	b2 := tuftest.NewBuilder(t)
	b2.AddTarget("a.img", []byte("a"))
	b2.AddTarget("b.img", []byte("b"))
	b2.SetManifestV2("3.0.0", []tuftest.ArtifactV2{
		{TargetName: "a.img", Version: "1", Tags: map[string]string{"kind": "os_phase_2", "os_variant": "host"}},
		{TargetName: "b.img", Version: "1", Tags: map[string]string{"kind": "os_phase_2", "os_variant": "host"}}})
	e.trust(t, b2.RootJSON())
	resp, body = put("two-hosts.zip", b2.Zip())
	if eb := wantError(t, resp, body, 400, "REPOSITORY_INVALID"); !strings.Contains(eb.Message, "at most one host") {
		t.Errorf("message %q", eb.Message)
	}
	b3 := tuftest.NewBuilder(t)
	b3.AddTarget("sp2.zip", []byte("sp"))
	b3.SetManifestV2("4.0.0", []tuftest.ArtifactV2{{TargetName: "sp2.zip", Version: "4.0.0", Tags: map[string]string{"kind": "sp", "sp_board": "cosmo-a"}}})
	e.trust(t, b3.RootJSON())
	resp, body = put("same-sp.zip", b3.Zip())
	if eb := wantError(t, resp, body, 409, "REPOSITORY_CONFLICT"); !strings.Contains(eb.Message, "repository 2.0.0") || !strings.Contains(eb.Message, "(4.0.0)") {
		t.Errorf("message %q should name both repositories", eb.Message)
	}
	for _, err := range ct.Errors() {
		t.Errorf("OpenAPI: %v", err)
	}
}
