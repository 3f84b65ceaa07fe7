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

// defaultHTTP is the *http.Client of a zero Peer and of NewSledClient
// without one, shared so that its connections are reused.
var defaultHTTP = sync.OnceValue(DefaultHTTPClient)

// Peer implements depot.Peer over HTTP: a sled's copy-from-depot jobs fetch
// through it from other sleds' repo-depot APIs. Make it with NewPeer, which
// enforces a SourcePolicy; the zero value (HTTP nil: a shared
// DefaultHTTPClient, Policy nil: any source, any length) is for tests and
// trusted set-ups. Either way redirects are not followed and errors carry
// nothing the source sent. Peer sets no stall timeout of its own: the
// sled's copy job has a stall watchdog. Safe for concurrent use.
type Peer struct {
	HTTP   *http.Client
	Policy *SourcePolicy
}

var _ depot.Peer = Peer{}

// Fetch GETs {baseURL}/artifact/sha256/{hex} and returns the body and its
// Content-Length. The caller closes body. A source that does not hold d
// answers 404 NOT_FOUND, which unwraps to store.ErrNotFound. With a
// Policy, the source must be allowed and declare a Content-Length within
// the limit; the body then ends at that length whatever the source sends.
func (p Peer) Fetch(ctx context.Context, baseURL string, d store.Digest) (io.ReadCloser, int64, error) {
	if err := p.CheckSource(baseURL); err != nil {
		return nil, 0, err
	}
	rc, size, err := p.client(baseURL).GetArtifact(ctx, d)
	if err != nil {
		return nil, 0, sourceError(err)
	}
	if err := p.checkLength(size); err != nil {
		rc.Close()
		return nil, 0, err
	}
	return sourceBody{rc}, size, nil
}

// Head asks the source for d's length without fetching it, under the same
// rules as Fetch.
func (p Peer) Head(ctx context.Context, baseURL string, d store.Digest) (int64, error) {
	if err := p.CheckSource(baseURL); err != nil {
		return 0, err
	}
	size, err := p.client(baseURL).HeadArtifact(ctx, d)
	if err != nil {
		return 0, sourceError(err)
	}
	if err := p.checkLength(size); err != nil {
		return 0, err
	}
	return size, nil
}

func (p Peer) client(baseURL string) *Client {
	hc := p.HTTP
	if hc == nil {
		hc = defaultHTTP()
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// sourceBody keeps a source's failures mid-body (a broken or malformed
// stream) free of what it sent.
type sourceBody struct{ io.ReadCloser }

func (b sourceBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = sourceError(err)
	}
	return n, err
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
