package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"depot/server/api"
)

// This file holds the calls of the operator API, which a coordinator
// serves on its --listen port. On a daemon without the coordinator role
// every call fails with api.ErrNotCoordinator.

const (
	reposPath = "/v1/system/update/repositories"
	rootsPath = "/v1/system/update/trust-roots"
	sledsPath = "/v1/sleds"
)

// UploadRepo uploads a repository archive (zip, tar, tar.gz or tar.zst)
// and waits for the coordinator to verify, stage and record it: PUT
// /v1/system/update/repositories?file_name=NAME. systemVersion is needed
// only for a repository without an artifacts.json manifest (else ""). size
// is body's length, or -1 to send it chunked; body is not closed. The same
// archive again is api.UploadAlreadyExists. Errors: api.ErrRepositoryInvalid
// (the message names the failed check), api.ErrRepositoryConflict,
// api.ErrTooLarge.
func (c *Client) UploadRepo(ctx context.Context, fileName, systemVersion string, body io.Reader, size int64) (api.UploadResult, error) {
	q := url.Values{"file_name": {fileName}}
	if systemVersion != "" {
		q.Set("system_version", systemVersion)
	}
	var res api.UploadResult
	err := c.do(ctx, call{
		method: http.MethodPut, path: reposPath, query: q, body: body, size: size,
		want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// listPageSize is the limit the client asks for when it walks a list.
const listPageSize = 1000

// maxListPages bounds the pages one walk follows, so that a server whose
// next_page never ends cannot keep a caller forever.
const maxListPages = 10000

// listAll walks every page of a paginated list of the operator API,
// following next_page, with the given sort_by ("" for the default).
func listAll[T any](ctx context.Context, c *Client, path, sortBy string) ([]T, error) {
	var out []T
	q := url.Values{"limit": {strconv.Itoa(listPageSize)}}
	if sortBy != "" {
		q.Set("sort_by", sortBy)
	}
	for range maxListPages {
		var page api.Page[T]
		err := c.do(ctx, call{method: http.MethodGet, path: path, query: q, want: []int{http.StatusOK}, onOK: decodeInto(&page)})
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.NextPage == nil {
			return out, nil
		}
		q = url.Values{"limit": {strconv.Itoa(listPageSize)}, "page_token": {*page.NextPage}}
	}
	return nil, fmt.Errorf("GET %s: more than %d pages", path, maxListPages)
}

// Repos returns every recorded repository, by ascending semantic version
// (every page).
func (c *Client) Repos(ctx context.Context) ([]api.Repo, error) {
	return listAll[api.Repo](ctx, c, reposPath, "version_ascending")
}

// Repo returns a repository with its replication progress. With wait > 0
// the coordinator answers as soon as the progress changes (state, or the
// sleds holding an artifact), or when wait ends. api.ErrNotFound if
// there is no such repository.
func (c *Client) Repo(ctx context.Context, systemVersion string, wait time.Duration) (api.RepoProgress, error) {
	return c.RepoUntil(ctx, systemVersion, wait, "")
}

// RepoUntil is Repo whose long-poll also answers at once when the
// repository is already in state until ("durable" or "complete") or
// further, so a caller waiting for a state cannot miss it between polls.
func (c *Client) RepoUntil(ctx context.Context, systemVersion string, wait time.Duration, until string) (api.RepoProgress, error) {
	var res api.RepoProgress
	q := waitQuery(wait)
	if until != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("until", until)
	}
	err := c.do(ctx, call{
		method: http.MethodGet, path: reposPath + "/" + url.PathEscape(systemVersion), query: q, wait: wait,
		want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// DeleteRepo prunes a repository; artifacts no other repository
// references leave every sled. api.ErrNotFound if there is none.
func (c *Client) DeleteRepo(ctx context.Context, systemVersion string) error {
	return c.do(ctx, call{
		method: http.MethodDelete, path: reposPath + "/" + url.PathEscape(systemVersion),
		want: []int{http.StatusNoContent},
	})
}

// TrustRoots returns every trusted root.json, by id (every page).
func (c *Client) TrustRoots(ctx context.Context) ([]api.TrustRoot, error) {
	return listAll[api.TrustRoot](ctx, c, rootsPath, "")
}

// TrustRoot returns the trusted root with this id (a UUID);
// api.ErrNotFound if there is none.
func (c *Client) TrustRoot(ctx context.Context, id string) (api.TrustRoot, error) {
	var res api.TrustRoot
	err := c.do(ctx, call{
		method: http.MethodGet, path: rootsPath + "/" + url.PathEscape(id),
		want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// AddTrustRoot trusts a root.json document (a second add of the same
// document returns the existing record). api.ErrTrustRootInvalid if doc
// is not a self-signed TUF root.
func (c *Client) AddTrustRoot(ctx context.Context, doc []byte) (api.TrustRoot, error) {
	var res api.TrustRoot
	err := c.do(ctx, call{
		method: http.MethodPost, path: rootsPath, body: bytes.NewReader(doc), size: int64(len(doc)), contentType: "application/json",
		want: []int{http.StatusCreated}, onOK: decodeInto(&res),
	})
	return res, err
}

// DeleteTrustRoot stops trusting the root with this id (a UUID).
// api.ErrNotFound if there is none.
func (c *Client) DeleteTrustRoot(ctx context.Context, id string) error {
	return c.do(ctx, call{
		method: http.MethodDelete, path: rootsPath + "/" + url.PathEscape(id),
		want: []int{http.StatusNoContent},
	})
}

// Sleds returns the sled registry, sorted by id (every page; the
// coordinator's own sled, "local", is not in it).
func (c *Client) Sleds(ctx context.Context) ([]api.SledRecord, error) {
	return listAll[api.SledRecord](ctx, c, sledsPath, "")
}

// Sled returns one registered sled; api.ErrNotFound if there is none.
func (c *Client) Sled(ctx context.Context, id string) (api.SledRecord, error) {
	var res api.SledRecord
	err := c.do(ctx, call{
		method: http.MethodGet, path: sledsPath + "/" + url.PathEscape(id),
		want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// PutSled adds the sled r.ID with r.ControlURL and r.DepotURL (empty: the
// coordinator asks the sled's /status), or changes its URLs, and returns
// the record as stored; an activation follows. r.State and r.Added are
// ignored. api.ErrInvalidSled for a bad id or URL, or an expunged sled.
func (c *Client) PutSled(ctx context.Context, r api.SledRecord) (api.SledRecord, error) {
	var res api.SledRecord
	err := c.do(ctx, call{
		method: http.MethodPut, path: sledsPath + "/" + url.PathEscape(r.ID),
		json: api.SledPut{ControlURL: r.ControlURL, DepotURL: r.DepotURL},
		want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// ExpungeSled takes a sled out of replication for good and returns its
// record (state expunged). api.ErrNotFound if there is none.
func (c *Client) ExpungeSled(ctx context.Context, id string) (api.SledRecord, error) {
	var res api.SledRecord
	err := c.do(ctx, call{
		method: http.MethodDelete, path: sledsPath + "/" + url.PathEscape(id),
		want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// ReplicationStatus returns the replication status. With wait > 0 the
// coordinator answers at the first change of the catalog or of
// replication, or when wait ends.
func (c *Client) ReplicationStatus(ctx context.Context, wait time.Duration) (api.ReplicationStatus, error) {
	var res api.ReplicationStatus
	err := c.do(ctx, call{
		method: http.MethodGet, path: "/v1/replication/status", query: waitQuery(wait), wait: wait,
		want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// ActivateReplication asks for a replication activation now (one queued
// absorbs the request); it does not wait for it. Follow it with
// ReplicationStatus.
func (c *Client) ActivateReplication(ctx context.Context) error {
	return c.do(ctx, call{method: http.MethodPost, path: "/v1/replication/activate", want: []int{http.StatusAccepted}})
}
