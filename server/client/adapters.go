package client

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"depot/depot"
	"depot/store"
)

// defaultHTTP is the *http.Client of a zero Peer, shared so that its
// connections are reused.
var defaultHTTP = sync.OnceValue(DefaultHTTPClient)

// Peer implements depot.Peer over HTTP: a sled's copy-from-depot jobs fetch
// through it from other sleds' repo-depot APIs. HTTP nil means a shared
// DefaultHTTPClient (connect timeout, no overall timeout). Peer sets no
// stall timeout of its own: the sled's copy job has a stall watchdog. The
// zero value is ready to use and safe for concurrent use.
type Peer struct{ HTTP *http.Client }

var _ depot.Peer = Peer{}

// Fetch GETs {baseURL}/artifact/sha256/{hex} and returns the body and its
// Content-Length (-1 if absent). The caller closes body. A peer that does
// not hold d answers 404, which unwraps to store.ErrNotFound.
func (p Peer) Fetch(ctx context.Context, baseURL string, d store.Digest) (io.ReadCloser, int64, error) {
	hc := p.HTTP
	if hc == nil {
		hc = defaultHTTP()
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
	return c.GetArtifact(ctx, d)
}

// sledClient adapts a Client on a sled's control URL to depot.SledClient.
type sledClient struct{ c *Client }

var _ depot.SledClient = sledClient{}

// NewSledClient adapts a Client on a sled's control URL (its sled API) to
// depot.SledClient, for the coordinator's replication. hc nil means
// DefaultHTTPClient. Info comes from GET /status (depot_url and the number
// of mirrors). Safe for concurrent use.
func NewSledClient(controlURL string, hc *http.Client) depot.SledClient {
	if hc == nil {
		hc = defaultHTTP()
	}
	return sledClient{New(controlURL, hc)}
}

func (s sledClient) GetConfig(ctx context.Context) (depot.Config, error) {
	return s.c.GetConfig(ctx)
}

func (s sledClient) PutConfig(ctx context.Context, cfg depot.Config) error {
	return s.c.PutConfig(ctx, cfg)
}

func (s sledClient) List(ctx context.Context) (map[store.Digest]int, error) {
	_, list, err := s.c.ListArtifacts(ctx)
	return list, err
}

func (s sledClient) Info(ctx context.Context) (depot.SledInfo, error) {
	st, err := s.c.Status(ctx)
	if err != nil {
		return depot.SledInfo{}, err
	}
	return depot.SledInfo{DepotURL: st.DepotURL, Mirrors: len(st.Mirrors)}, nil
}

func (s sledClient) PutArtifact(ctx context.Context, d store.Digest, gen uint64, body io.Reader, size int64) error {
	_, err := s.c.PutArtifactAt(ctx, d, &gen, body, size)
	return err
}

func (s sledClient) CopyFromDepot(ctx context.Context, d store.Digest, gen uint64, sourceURL string) error {
	return s.c.CopyFromDepot(ctx, d, &gen, sourceURL)
}

func (s sledClient) WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (depot.CopyJob, error) {
	return s.c.Copy(ctx, d, wait)
}
