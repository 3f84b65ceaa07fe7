package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"depot/server/api"
)

// This file holds the calls of the sled API (--listen) and of the
// repo-depot API (--depot-listen).

// generationQuery returns ?generation=G, or nothing for nil.
func generationQuery(gen *uint64) url.Values {
	if gen == nil {
		return nil
	}
	return url.Values{"generation": {strconv.FormatUint(*gen, 10)}}
}

// waitQuery returns ?wait=D, or nothing for 0.
func waitQuery(wait time.Duration) url.Values {
	if wait <= 0 {
		return nil
	}
	return url.Values{"wait": {wait.String()}}
}

// PutArtifact uploads body as the artifact d: PUT /artifacts/{sha256} on
// the sled API, without a generation (what an unmanaged sled takes). See
// PutArtifactAt.
func (c *Client) PutArtifact(ctx context.Context, d api.Digest, body io.Reader, size int64) (PutResult, error) {
	return c.PutArtifactAt(ctx, d, nil, body, size)
}

// PutArtifactAt uploads body as the artifact d at the sled's config
// generation (nil: none, for an unmanaged sled): PUT
// /artifacts/{sha256}?generation=G. size is body's length, or -1 to send it
// chunked. body is read to its end or until an error, and is not closed.
func (c *Client) PutArtifactAt(ctx context.Context, d api.Digest, generation *uint64, body io.Reader, size int64) (PutResult, error) {
	var res PutResult
	err := c.do(ctx, call{
		method: http.MethodPut, path: "/artifacts/" + d.String(), query: generationQuery(generation),
		body: body, size: size, want: []int{http.StatusOK}, onOK: decodeInto(&res),
	})
	return res, err
}

// GetArtifact downloads d: GET /artifact/sha256/{sha256} on the depot API.
// It returns the body and its length (-1 if the server sent none); the
// caller must close the body. The bytes are not checked against d here:
// whoever stores them does that.
func (c *Client) GetArtifact(ctx context.Context, d api.Digest) (io.ReadCloser, int64, error) {
	var rc io.ReadCloser
	var size int64
	err := c.do(ctx, call{
		method: http.MethodGet, path: "/artifact/sha256/" + d.String(), want: []int{http.StatusOK},
		onOK: func(r *http.Response) error {
			rc, size = r.Body, r.ContentLength
			return errKeepBody
		},
	})
	return rc, size, err
}

// HeadArtifact returns d's length without downloading it: HEAD
// /artifact/sha256/{sha256} on the depot API.
func (c *Client) HeadArtifact(ctx context.Context, d api.Digest) (int64, error) {
	var size int64
	err := c.do(ctx, call{
		method: http.MethodHead, path: "/artifact/sha256/" + d.String(), want: []int{http.StatusOK},
		onOK: func(r *http.Response) error {
			size = r.ContentLength
			return nil
		},
	})
	return size, err
}

// DeleteArtifact removes d from the sled; nil when it was absent.
// api.ErrArtifactInConfig when the sled's config lists it.
func (c *Client) DeleteArtifact(ctx context.Context, d api.Digest) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/artifacts/" + d.String(), want: []int{http.StatusNoContent}})
}

// ListArtifacts returns the sled's config generation (nil while unmanaged)
// and every artifact with the number of mirrors holding it (with a config,
// only configured artifacts).
func (c *Client) ListArtifacts(ctx context.Context) (*uint64, map[api.Digest]int, error) {
	var res api.ListResponse
	err := c.do(ctx, call{method: http.MethodGet, path: "/artifacts", want: []int{http.StatusOK}, onOK: decodeInto(&res)})
	if err != nil {
		return nil, nil, err
	}
	if res.List == nil {
		res.List = map[api.Digest]int{}
	}
	return res.Generation, res.List, nil
}

// Status returns the sled's GET /status.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var res StatusResponse
	err := c.do(ctx, call{method: http.MethodGet, path: "/status", want: []int{http.StatusOK}, onOK: decodeInto(&res)})
	return res, err
}

// GetConfig returns the sled's artifact config: GET /artifacts-config,
// with the catalog it comes from (CatalogID "" when it names none).
// api.ErrNoConfig while the sled is unmanaged.
func (c *Client) GetConfig(ctx context.Context) (api.Config, error) {
	var cfg api.Config
	err := c.do(ctx, call{method: http.MethodGet, path: "/artifacts-config", want: []int{http.StatusOK}, onOK: decodeInto(&cfg)})
	return cfg, err
}

// PutConfig installs cfg: PUT /artifacts-config, with cfg.CatalogID as
// catalog_id when set. The same generation with the same set again is
// nil; a lower generation, or the same with another set, is
// api.ErrConfigGeneration; a config from another catalog than the
// sled's is api.ErrCatalogMismatch.
func (c *Client) PutConfig(ctx context.Context, cfg api.Config) error {
	if cfg.Artifacts == nil {
		cfg.Artifacts = []api.Digest{}
	}
	return c.do(ctx, call{method: http.MethodPut, path: "/artifacts-config", json: cfg, want: []int{http.StatusNoContent}})
}

// CopyFromDepot asks the sled to copy d from the repo-depot API at
// depotBaseURL in the background: POST /artifacts/{sha256}/copy-from-depot.
// generation is the sled's config generation (nil for an unmanaged sled).
// api.ErrTooManyCopies (with APIError.RetryAfter) when the sled's copy
// limit is reached; follow the job with Copy.
func (c *Client) CopyFromDepot(ctx context.Context, d api.Digest, generation *uint64, depotBaseURL string) error {
	return c.do(ctx, call{
		method: http.MethodPost, path: "/artifacts/" + d.String() + "/copy-from-depot", query: generationQuery(generation),
		json: api.CopyFromDepotRequest{DepotBaseURL: depotBaseURL}, want: []int{http.StatusAccepted},
	})
}

// Copies returns the sled's copy jobs, running and recently finished,
// newest first: GET /copies.
func (c *Client) Copies(ctx context.Context) ([]api.CopyJob, error) {
	var res api.List[api.CopyJob]
	err := c.do(ctx, call{method: http.MethodGet, path: "/copies", want: []int{http.StatusOK}, onOK: decodeInto(&res)})
	return res.Items, err
}

// Copy returns d's copy job: GET /copies/{sha256}. With wait > 0 the sled
// answers as soon as a running job finishes, or when wait ends (capped at
// 5 minutes by the server). api.ErrNotFound when d has no job.
func (c *Client) Copy(ctx context.Context, d api.Digest, wait time.Duration) (api.CopyJob, error) {
	var job api.CopyJob
	err := c.do(ctx, call{
		method: http.MethodGet, path: "/copies/" + d.String(), query: waitQuery(wait), wait: wait,
		want: []int{http.StatusOK}, onOK: decodeInto(&job),
	})
	return job, err
}

// StartScrub asks the sled for a verify pass over every mirror now (one
// already queued or running absorbs the request) and returns the scrub
// status: POST /scrub.
func (c *Client) StartScrub(ctx context.Context) (api.ScrubStatus, error) {
	var st api.ScrubStatus
	err := c.do(ctx, call{method: http.MethodPost, path: "/scrub", want: []int{http.StatusAccepted}, onOK: decodeInto(&st)})
	return st, err
}
