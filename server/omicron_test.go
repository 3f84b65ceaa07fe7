package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
	"depot/server/openapi/openapitest"
	"depot/server/remote"
	"depot/server/servertest"
)

// omicronRouter sends each request through the CheckingTransport of the
// omicron document that has its path: Nexus's external API for /v1/, the
// repo-depot API for GET /artifact/sha256/, the sled-agent API for the
// rest. HEADs of the repo-depot path (Depot's source check, an extension)
// pass unchecked.
type omicronRouter struct {
	base                   http.RoundTripper
	sled, repoDepot, nexus *openapitest.CheckingTransport
}

func (r *omicronRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	p := req.URL.Path
	switch {
	case strings.HasPrefix(p, "/v1/"):
		return r.nexus.RoundTrip(req)
	case strings.HasPrefix(p, "/artifact/sha256/") && req.Method == http.MethodHead:
		return r.base.RoundTrip(req)
	case strings.HasPrefix(p, "/artifact/sha256/"):
		return r.repoDepot.RoundTrip(req)
	}
	return r.sled.RoundTrip(req)
}

func omicronTransport(t *testing.T, name string, base http.RoundTripper) *openapitest.CheckingTransport {
	t.Helper()
	doc, err := openapitest.LoadOmicron(name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := openapitest.NewValidatorFor(doc)
	if err != nil {
		t.Fatal(err)
	}
	return v.Transport(base)
}

// TestOmicron_Conformance drives the operations Nexus's replication task
// uses on a sled (config, list, put, copy-from-depot), the repo-depot
// fetch a sled makes of its peer, and the external update API
// (repositories, trust roots), through clients that validate every
// request and answer against omicron's own documents (commit b848b6df85,
// server/openapi/openapitest/testdata/omicron). Any status a document does
// not declare for its operation, or a body that does not decode into its
// schema, fails the test, as it would fail omicron's generated clients.
func TestOmicron_Conformance(t *testing.T) {
	t.Parallel()
	base := client.DefaultHTTPClient().Transport
	rt := &omicronRouter{
		base:      base,
		sled:      omicronTransport(t, openapitest.OmicronSledAgent, base),
		repoDepot: omicronTransport(t, openapitest.OmicronRepoDepot, base),
		nexus:     omicronTransport(t, openapitest.OmicronNexus, base),
	}
	hc := &http.Client{Transport: rt}

	// vdo sends one request through the validating client.
	vdo := func(method, u string, body io.Reader, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		return doWith(t, hc, method, u, body, hdr...)
	}
	want := func(what string, resp *http.Response, body []byte, status int) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("%s: %d %s, want %d", what, resp.StatusCode, body, status)
		}
	}
	jsonBody := func(v any) io.Reader {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(b)
	}
	const jsonCT = "application/json"

	// --- the sled-agent and repo-depot APIs, as Nexus and sleds use them.
	// a holds 16 artifacts; b copies them from a's depot port, fetching
	// through the repo-depot validator.
	a := newEnv(t)
	b := newEnv(t, withSledOptions(depot.SledOptions{Peer: remote.Peer{HTTP: hc}}))
	var blobs [][]byte
	var ds []api.Digest
	for range 16 {
		data, d := blob(t, 20_000)
		blobs, ds = append(blobs, data), append(ds, d)
	}
	resp, body := vdo("GET", a.sledURL+"/artifacts-config", nil)
	want("config before any", resp, body, 404)
	// (Not GET /artifacts yet: an unmanaged sled answers "generation":
	// null, which omicron's ArtifactListResponse does not allow; Nexus
	// always puts a config before it lists.)
	for _, e := range []*env{a, b} {
		resp, body = vdo("PUT", e.sledURL+"/artifacts-config", jsonBody(api.Config{Generation: 1, Artifacts: ds}), "Content-Type", jsonCT)
		want("put config", resp, body, 204)
		resp, body = vdo("PUT", e.sledURL+"/artifacts-config", jsonBody(api.Config{Generation: 1, Artifacts: ds}), "Content-Type", jsonCT)
		want("put the same config again", resp, body, 204)
	}
	resp, body = vdo("GET", a.sledURL+"/artifacts-config", nil)
	want("get config", resp, body, 200)
	resp, body = vdo("PUT", a.sledURL+"/artifacts-config", jsonBody(api.Config{Generation: 0, Artifacts: []api.Digest{}}), "Content-Type", jsonCT)
	want("config at an older generation", resp, body, 409)
	resp, body = vdo("PUT", a.sledURL+"/artifacts-config", strings.NewReader(`{"generation":9223372036854775808,"artifacts":[]}`), "Content-Type", jsonCT)
	want("config above 2^63-1", resp, body, 400)
	for i, d := range ds {
		hex := d.String()
		if i%2 == 1 {
			hex = strings.ToUpper(hex) // omicron's ArtifactHash parses either case
		}
		resp, body = vdo("PUT", a.sledURL+"/artifacts/"+hex+"?generation=1", bytes.NewReader(blobs[i]), "Content-Type", "application/octet-stream")
		want("put artifact", resp, body, 200)
	}
	resp, body = vdo("PUT", a.sledURL+"/artifacts/"+ds[0].String()+"?generation=1", bytes.NewReader(blobs[1]), "Content-Type", "application/octet-stream")
	want("put with the wrong hash", resp, body, 400)
	resp, body = vdo("PUT", a.sledURL+"/artifacts/"+ds[0].String()+"?generation=2", bytes.NewReader(blobs[0]), "Content-Type", "application/octet-stream")
	want("put at another generation", resp, body, 409)
	resp, body = vdo("PUT", a.sledURL+"/artifacts/"+ds[0].String()+"?generation=9223372036854775808", bytes.NewReader(blobs[0]), "Content-Type", "application/octet-stream")
	want("put above 2^63-1", resp, body, 400)
	resp, body = vdo("GET", a.sledURL+"/artifacts", nil)
	want("list", resp, body, 200)
	resp, body = vdo("GET", a.depotURL+"/artifact/sha256/"+ds[3].String(), nil)
	want("repo-depot get", resp, body, 200)
	if !bytes.Equal(body, blobs[3]) {
		t.Fatal("repo-depot get: other bytes")
	}
	_, absent := blob(t, 10)
	resp, body = vdo("GET", a.depotURL+"/artifact/sha256/"+absent.String(), nil)
	want("repo-depot get of an absent artifact", resp, body, 404)

	// A burst of copies, as Nexus sends them (up to 8 at once; 16 here).
	copyReq := func(d api.Digest, source string, gen string) (*http.Response, []byte) {
		return vdo("POST", b.sledURL+"/artifacts/"+d.String()+"/copy-from-depot?generation="+gen,
			jsonBody(api.CopyFromDepotRequest{DepotBaseURL: source}), "Content-Type", jsonCT)
	}
	var wg sync.WaitGroup
	statuses := make([]int, len(ds))
	for i, d := range ds {
		wg.Go(func() {
			resp, _ := copyReq(d, a.depotURL, "1")
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusAccepted {
			t.Fatalf("copy %d of the burst: %d, want 202", i, st)
		}
	}
	for _, d := range ds {
		if job := b.waitCopy(t, d); job.State != api.CopySucceeded {
			t.Fatalf("copy job = %+v", job)
		}
	}
	b.checkMirrors(t, ds...)
	resp, body = vdo("GET", b.sledURL+"/artifacts", nil)
	want("list after the copies", resp, body, 200)
	var list api.ListResponse
	if err := json.Unmarshal(body, &list); err != nil || len(list.List) != len(ds) {
		t.Fatalf("b lists %d artifacts, want %d (%v)", len(list.List), len(ds), err)
	}
	// Copy failures are statuses Nexus sees.
	resp, body = vdo("PUT", b.sledURL+"/artifacts-config", jsonBody(api.Config{Generation: 2, Artifacts: append(slices.Clone(ds), absent)}), "Content-Type", jsonCT)
	want("config with an artifact no sled holds", resp, body, 204)
	resp, body = copyReq(absent, a.depotURL, "2")
	want("copy from a source without the artifact", resp, body, 502)
	dead := servertest.Listen(t)
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	resp, body = copyReq(absent, deadURL, "2")
	want("copy from an unreachable source", resp, body, 502)
	resp, body = copyReq(absent, a.depotURL, "9223372036854775808")
	want("copy above 2^63-1", resp, body, 400)
	resp, body = copyReq(absent, a.depotURL, "1")
	want("copy at a stale generation", resp, body, 409)
	resp, body = copyReq(absent, "not a url", "2")
	want("copy from a bad URL", resp, body, 400)

	// --- the external update API (repositories, trust roots).
	coord := newEnv(t, withCoordinator())
	roots := coord.opURL + "/v1/system/update/trust-roots"
	repos := coord.opURL + "/v1/system/update/repositories"
	var zips [][]byte
	var rootIDs []string
	for _, v := range []string{"1.0.0", "1.10.0", "1.9.0-rc.1"} {
		zip, root, _ := testRepo(t, v)
		zips = append(zips, zip)
		resp, body = vdo("POST", roots, bytes.NewReader(root), "Content-Type", jsonCT)
		want("trust root", resp, body, 201)
		var tr api.TrustRoot
		if err := json.Unmarshal(body, &tr); err != nil {
			t.Fatal(err)
		}
		rootIDs = append(rootIDs, tr.ID)
		resp, body = vdo("POST", roots, bytes.NewReader(root), "Content-Type", jsonCT)
		want("the same trust root again", resp, body, 201)
		resp, body = vdo("PUT", repos+"?file_name="+v+".zip", bytes.NewReader(zip), "Content-Type", "application/octet-stream")
		want("upload "+v, resp, body, 200)
	}
	resp, body = vdo("PUT", repos+"?file_name=again.zip", bytes.NewReader(zips[0]), "Content-Type", "application/octet-stream")
	want("upload again", resp, body, 200)
	if !strings.Contains(string(body), `"already_exists"`) {
		t.Errorf("upload again: %s", body)
	}
	bad, badRoot, _ := testRepo(t, "release-7")
	resp, body = vdo("POST", roots, bytes.NewReader(badRoot), "Content-Type", jsonCT)
	want("trust the root of a non-semver repository", resp, body, 201)
	resp, body = vdo("PUT", repos+"?file_name=bad.zip", bytes.NewReader(bad), "Content-Type", "application/octet-stream")
	want("upload with a system_version that is not semver", resp, body, 400)
	resp, body = vdo("PUT", repos+"?file_name=junk.zip", strings.NewReader("not an archive"), "Content-Type", "application/octet-stream")
	want("upload of junk", resp, body, 400)
	resp, body = vdo("POST", roots, strings.NewReader(`{"signed":{},"signatures":[]}`), "Content-Type", jsonCT)
	want("trust a non-root", resp, body, 400)

	for _, sort := range []string{"", "&sort_by=version_ascending", "&sort_by=version_descending"} {
		next := repos + "?limit=2" + sort
		for range 3 {
			resp, body = vdo("GET", next, nil)
			want("list repositories", resp, body, 200)
			var page api.Page[api.Repo]
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			if page.NextPage == nil {
				break
			}
			next = repos + "?limit=2&page_token=" + url.QueryEscape(*page.NextPage)
		}
	}
	resp, body = vdo("GET", repos+"?sort_by=newest", nil)
	want("list repositories with a bad sort", resp, body, 400)
	resp, body = vdo("GET", repos+"?page_token=garbage", nil)
	want("list repositories with a bad token", resp, body, 400)
	resp, body = vdo("GET", repos+"/1.10.0", nil)
	want("view repository", resp, body, 200)
	resp, body = vdo("GET", repos+"/9.9.9", nil)
	want("view an absent repository", resp, body, 404)

	resp, body = vdo("GET", roots+"?limit=1&sort_by=id_ascending", nil)
	want("list trust roots", resp, body, 200)
	resp, body = vdo("GET", roots, nil)
	want("list trust roots, default page", resp, body, 200)
	resp, body = vdo("GET", roots+"/"+rootIDs[1], nil)
	want("view trust root", resp, body, 200)
	resp, body = vdo("DELETE", roots+"/"+rootIDs[1], nil)
	want("delete trust root", resp, body, 204)
	resp, body = vdo("GET", roots+"/"+rootIDs[1], nil)
	want("view a deleted trust root", resp, body, 404)
	resp, body = vdo("DELETE", roots+"/"+rootIDs[1], nil)
	want("delete a deleted trust root", resp, body, 404)

	// Every exchange matched its document, and every operation was driven.
	for name, ct := range map[string]*openapitest.CheckingTransport{
		openapitest.OmicronSledAgent: rt.sled, openapitest.OmicronRepoDepot: rt.repoDepot, openapitest.OmicronNexus: rt.nexus,
	} {
		for _, err := range ct.Errors() {
			t.Errorf("omicron's %s document: %v", name, err)
		}
		seen := ct.Seen()
		for _, op := range omicronOperations[name] {
			if !slices.Contains(seen, op) {
				t.Errorf("omicron's %s: operation %s was not exercised", name, op)
			}
		}
	}
}

// omicronOperations is every operation of omicron's documents that Depot
// serves (the README's compatibility table).
var omicronOperations = map[string][]string{
	openapitest.OmicronSledAgent: {"artifact_config_get", "artifact_config_put", "artifact_list", "artifact_put", "artifact_copy_from_depot"},
	openapitest.OmicronRepoDepot: {"artifact_get_by_sha256"},
	openapitest.OmicronNexus: {
		"system_update_repository_upload", "system_update_repository_list", "system_update_repository_view",
		"system_update_trust_root_create", "system_update_trust_root_list", "system_update_trust_root_view",
		"system_update_trust_root_delete",
	},
}
