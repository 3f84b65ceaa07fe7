// Package remote implements the depot package's Peer and SledClient over
// HTTP with server/client: the sled's copy-from-depot jobs fetch from a
// peer's repo-depot API through Peer, and the coordinator drives each sled
// through NewSledClient. It is the one place where the client meets depot
// types, so that the client itself need not link depot: it converts the
// bodies of server/api into depot and store types, and maps the error
// codes the sled API answers with back to the depot and store sentinels
// (depot.ErrConfigGeneration, store.ErrNotFound, ...) that depot's callers
// match with errors.Is.
package remote

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
	"depot/server/transport"
	"depot/store"
)

// defaultHTTP is the *http.Client of NewSledClient without one, shared so
// that its connections are reused.
var defaultHTTP = sync.OnceValue(client.DefaultHTTPClient)

// Peer implements depot.Peer (and depot.SourceChecker) over HTTP with a
// client.Fetcher: a sled's copy-from-depot jobs fetch through it from
// other sleds' repo-depot APIs, under the Fetcher's SourcePolicy. Make it
// with NewPeer; the zero value fetches from anywhere (tests, trusted
// set-ups). Safe for concurrent use.
type Peer struct {
	HTTP   *http.Client         // nil: a shared client.DefaultHTTPClient
	Policy *client.SourcePolicy // nil: any source, any length
}

var (
	_ depot.Peer          = Peer{}
	_ depot.SourceChecker = Peer{}
)

// NewPeer returns the Peer of a sled's copy-from-depot jobs (see
// client.NewFetcher).
func NewPeer(policy *client.SourcePolicy, tlsr *transport.Reloader) Peer {
	f := client.NewFetcher(policy, tlsr)
	return Peer{HTTP: f.HTTP, Policy: f.Policy}
}

func (p Peer) fetcher() client.Fetcher { return client.Fetcher{HTTP: p.HTTP, Policy: p.Policy} }

// CheckSource refuses a source the policy does not allow.
func (p Peer) CheckSource(baseURL string) error { return p.fetcher().CheckSource(baseURL) }

// Fetch GETs {baseURL}/artifact/sha256/{hex} and returns the body and its
// Content-Length. The caller closes body. A peer that does not hold d
// answers 404, which unwraps to store.ErrNotFound.
func (p Peer) Fetch(ctx context.Context, baseURL string, d store.Digest) (io.ReadCloser, int64, error) {
	body, size, err := p.fetcher().Fetch(ctx, baseURL, api.Digest(d))
	return body, size, domainError(err, store.ErrNotFound)
}

// Stat HEADs {baseURL}/artifact/sha256/{hex} under the same rules as
// Fetch and returns the Content-Length. A 404 unwraps to store.ErrNotFound.
// A peer that does not serve HEAD (405, 501: omicron's repo depot
// documents GET only) is asked with a GET whose body is closed unread.
func (p Peer) Stat(ctx context.Context, baseURL string, d store.Digest) (int64, error) {
	f := p.fetcher()
	size, err := f.Head(ctx, baseURL, api.Digest(d))
	var se *client.SourceError
	if errors.As(err, &se) && (se.Status == http.StatusMethodNotAllowed || se.Status == http.StatusNotImplemented) {
		var body io.ReadCloser
		body, size, err = f.Fetch(ctx, baseURL, api.Digest(d))
		if err == nil {
			body.Close()
		}
	}
	return size, domainError(err, store.ErrNotFound)
}

// sledClient adapts a Client on a sled's control URL to depot.SledClient.
type sledClient struct{ c *client.Client }

var _ depot.SledClient = sledClient{}

// NewSledClient adapts a Client on a sled's control URL (its sled API) to
// depot.SledClient, for the coordinator's replication. hc nil means
// client.DefaultHTTPClient. Info comes from GET /status (depot_url and
// the number of mirrors). Safe for concurrent use.
func NewSledClient(controlURL string, hc *http.Client) depot.SledClient {
	if hc == nil {
		hc = defaultHTTP()
	}
	return sledClient{client.New(controlURL, hc)}
}

// GetConfig returns the sled's config; depot.ErrNoConfig while it is
// unmanaged.
func (s sledClient) GetConfig(ctx context.Context) (depot.Config, error) {
	cfg, err := s.c.GetConfig(ctx)
	if err != nil {
		return depot.Config{}, domainError(err, nil)
	}
	return depot.Config{CatalogID: cfg.CatalogID, Generation: cfg.Generation, Artifacts: cfg.Artifacts}, nil
}

func (s sledClient) PutConfig(ctx context.Context, cfg depot.Config) error {
	return domainError(s.c.PutConfig(ctx, api.Config{CatalogID: cfg.CatalogID, Generation: cfg.Generation, Artifacts: cfg.Artifacts}), nil)
}

func (s sledClient) List(ctx context.Context) (map[store.Digest]int, error) {
	_, list, err := s.c.ListArtifacts(ctx)
	if err != nil {
		return nil, domainError(err, store.ErrNotFound)
	}
	return list, nil
}

func (s sledClient) Info(ctx context.Context) (depot.SledInfo, error) {
	st, err := s.c.Status(ctx)
	if err != nil {
		return depot.SledInfo{}, domainError(err, store.ErrNotFound)
	}
	return depot.SledInfo{DepotURL: st.DepotURL, Mirrors: len(st.Mirrors)}, nil
}

func (s sledClient) PutArtifact(ctx context.Context, d store.Digest, gen uint64, body io.Reader, size int64) error {
	_, err := s.c.PutArtifactAt(ctx, api.Digest(d), &gen, body, size)
	return domainError(err, store.ErrNotFound)
}

func (s sledClient) CopyFromDepot(ctx context.Context, d store.Digest, gen uint64, sourceURL string) error {
	return domainError(s.c.CopyFromDepot(ctx, api.Digest(d), &gen, sourceURL), store.ErrNotFound)
}

func (s sledClient) WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (depot.CopyJob, error) {
	j, err := s.c.Copy(ctx, api.Digest(d), wait)
	if err != nil {
		return depot.CopyJob{}, domainError(err, depot.ErrCopyNotFound)
	}
	return depot.CopyJob{
		Hash: store.Digest(j.Hash), Source: j.Source, Generation: j.Generation, State: j.State,
		Bytes: j.Bytes, Error: j.Error, Started: j.Started, Finished: j.Finished,
	}, nil
}

// domainErrs maps the codes of the sled and repo-depot APIs to the depot
// and store sentinels the server matched for them. NOT_FOUND is the
// caller's to name (several sentinels share it).
var domainErrs = map[string]error{
	api.CodeInvalidHash:         store.ErrInvalidDigest,
	api.CodeHashMismatch:        store.ErrHashMismatch,
	api.CodeTruncatedBody:       store.ErrSizeMismatch,
	api.CodeNoConfig:            depot.ErrNoConfig,
	api.CodeConfigGeneration:    depot.ErrConfigGeneration,
	api.CodeCatalogMismatch:     depot.ErrCatalogMismatch,
	api.CodeGeneration:          depot.ErrGeneration,
	api.CodeNotInConfig:         depot.ErrNotInConfig,
	api.CodeArtifactInConfig:    depot.ErrArtifactInConfig,
	api.CodeTooManyCopies:       depot.ErrTooManyCopies,
	api.CodeInvalidDepotURL:     depot.ErrInvalidSource,
	api.CodeSourceUnavailable:   depot.ErrSourceUnavailable,
	api.CodeSourceNotFound:      depot.ErrSourceNotFound,
	api.CodeNoMirrors:           store.ErrNoMirrors,
	api.CodeShuttingDown:        store.ErrClosed,
	api.CodeInsufficientStorage: store.ErrNoSpace,
}

// domainError returns err so that it also matches, with errors.Is, the
// domain sentinel of its error code (notFound for NOT_FOUND); its text and
// its *client.APIError are unchanged. Errors without a code pass as they
// are.
func domainError(err error, notFound error) error {
	var ae *client.APIError
	var se *client.SourceError
	var code string
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		code = ae.Code
	case errors.As(err, &se):
		code = se.Code
		if se.Status == http.StatusNotFound && code == "" {
			// A copy source that is not Depot (omicron's repo depot) says
			// 404 without Depot's error code.
			code = api.CodeNotFound
		}
	default:
		return err
	}
	sentinel := domainErrs[code]
	if code == api.CodeNotFound {
		sentinel = notFound
	}
	if sentinel == nil {
		return err
	}
	return &mapped{err: err, sentinel: sentinel}
}

// mapped is an error from the wire that also matches a domain sentinel.
type mapped struct {
	err      error
	sentinel error
}

func (m *mapped) Error() string   { return m.err.Error() }
func (m *mapped) Unwrap() []error { return []error{m.err, m.sentinel} }
