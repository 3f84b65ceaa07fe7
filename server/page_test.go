package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"depot/server/api"
)

// getPage GETs one page of a list and decodes it.
func getPage[T any](t *testing.T, rawURL string) api.Page[T] {
	t.Helper()
	resp, body := do(t, "GET", rawURL, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", rawURL, resp.StatusCode, body)
	}
	var p api.Page[T]
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	return p
}

// TestOperator_Pagination: lists are paginated as omicron's: limit,
// page_token (which carries the sort), sort_by; pages never overlap and
// the last one has next_page null; bad parameters are 400.
func TestOperator_Pagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withCoordinator())
	ctx := context.Background()
	versions := []string{"1.10.0", "1.9.0", "2.0.0-rc.1", "2.0.0", "0.1.0"}
	var ids []string
	for _, v := range versions {
		zip, root, _ := testRepo(t, v)
		ids = append(ids, e.trust(t, root).ID)
		if _, err := e.op.UploadRepo(ctx, "r.zip", "", strings.NewReader(string(zip)), int64(len(zip))); err != nil {
			t.Fatalf("upload %s: %v", v, err)
		}
	}
	slices.Sort(ids)

	// Trust roots by id, two at a time.
	var got []string
	next := e.opURL + "/v1/system/update/trust-roots?limit=2"
	for pages := 0; ; pages++ {
		if pages > len(ids) {
			t.Fatal("next_page never ends")
		}
		p := getPage[api.TrustRoot](t, next)
		if len(p.Items) > 2 {
			t.Fatalf("page of %d items with limit=2", len(p.Items))
		}
		for _, r := range p.Items {
			got = append(got, r.ID)
		}
		if p.NextPage == nil {
			break
		}
		next = e.opURL + "/v1/system/update/trust-roots?limit=2&page_token=" + url.QueryEscape(*p.NextPage)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("trust roots over pages %v, want %v", got, ids)
	}

	// Repositories by semantic version, both ways, and through the client.
	asc := []string{"0.1.0", "1.9.0", "1.10.0", "2.0.0-rc.1", "2.0.0"}
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	for sort, want := range map[string][]string{"": asc, "version_ascending": asc, "version_descending": desc} {
		var got []string
		q := "?limit=3"
		if sort != "" {
			q += "&sort_by=" + sort
		}
		p := getPage[api.Repo](t, e.opURL+"/v1/system/update/repositories"+q)
		for _, r := range p.Items {
			got = append(got, r.SystemVersion)
		}
		if p.NextPage == nil {
			t.Fatalf("sort %q: no next_page after 3 of 5", sort)
		}
		p = getPage[api.Repo](t, e.opURL+"/v1/system/update/repositories?page_token="+url.QueryEscape(*p.NextPage))
		for _, r := range p.Items {
			got = append(got, r.SystemVersion)
		}
		if p.NextPage != nil || !slices.Equal(got, want) {
			t.Fatalf("sort %q: %v (next %v), want %v", sort, got, p.NextPage, want)
		}
	}
	repos, err := e.op.Repos(ctx)
	if err != nil || len(repos) != len(asc) || repos[0].SystemVersion != "0.1.0" {
		t.Fatalf("client Repos = %+v, %v", repos, err)
	}

	// Bad parameters.
	p := getPage[api.Repo](t, e.opURL+"/v1/system/update/repositories?limit=1")
	for _, q := range []string{
		"limit=0", "limit=-1", "limit=x", "limit=10001", "sort_by=name_ascending", "page_token=garbage",
		"page_token=" + url.QueryEscape(*p.NextPage) + "&sort_by=version_descending",
	} {
		resp, body := do(t, "GET", e.opURL+"/v1/system/update/repositories?"+q, nil)
		wantError(t, resp, body, 400, "BAD_REQUEST")
	}
	for _, q := range []string{"sort_by=version_ascending", "limit=0", "page_token=%7B"} {
		resp, body := do(t, "GET", e.opURL+"/v1/system/update/trust-roots?"+q, nil)
		wantError(t, resp, body, 400, "BAD_REQUEST")
		resp, body = do(t, "GET", e.opURL+"/v1/sleds?"+q, nil)
		wantError(t, resp, body, 400, "BAD_REQUEST")
	}
}
