package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"depot/server/api"
	"depot/server/transport"
)

// This file holds the one outbound path of a sled: fetching an artifact
// from a copy source (Fetcher; server/remote adapts it to depot.Peer).
// Every fetch, GET or HEAD, obeys the same SourcePolicy, and no byte a
// source sends reaches an error.

// Errors of fetching from a copy source. The messages are fixed: nothing a
// source sent is ever part of them.
var (
	// ErrSourceNotAllowed: the source is outside --copy-source-allow (and
	// not a rack member over TLS).
	ErrSourceNotAllowed = errors.New("copy source not allowed")
	// ErrSourceNoLength: the source's answer declared no Content-Length.
	ErrSourceNoLength = errors.New("copy source sent no Content-Length")
	// ErrSourceTooLarge: the declared Content-Length is over the limit.
	ErrSourceTooLarge = errors.New("copy source declares more than the largest artifact accepted")
	// ErrSourceTLS: the source's certificate did not verify.
	ErrSourceTLS = errors.New("copy source's TLS certificate did not verify against --tls-ca")
	// ErrSourceUnreachable: no connection could be made.
	ErrSourceUnreachable = errors.New("copy source unreachable")
	// ErrSourceProtocol: the source's answer was not valid HTTP.
	ErrSourceProtocol = errors.New("copy source's answer is not a valid HTTP response")
)

// SourceError is a copy source's non-200 answer: its status, and its
// error_code only when it is one of Depot's (never its message or body).
// It unwraps to that code's server/api sentinel (api.ErrNotFound for
// NOT_FOUND).
type SourceError struct {
	Status int
	Code   string
}

func (e *SourceError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("copy source answered %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("copy source answered %d", e.Status)
}

func (e *SourceError) Unwrap() error { return api.ErrForCode(e.Code) }

// SourcePolicy decides which copy sources a sled fetches from. The zero
// value allows loopback sources only and sets no size limit. Safe for
// concurrent use once built.
type SourcePolicy struct {
	prefixes  []netip.Prefix
	hostPorts map[string]bool
	// rackTLS allows any https source whose certificate verifies against
	// the rack CA.
	rackTLS bool
	// maxSize bounds a source's Content-Length; <= 0: no bound.
	maxSize int64
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// NewSourcePolicy builds a policy from --copy-source-allow entries (CIDR
// prefixes, bare IP addresses, or host:port; none: loopback only), whether
// rack members over TLS are allowed wherever they are, and the largest
// Content-Length accepted.
func NewSourcePolicy(allow []string, rackTLS bool, maxSize int64) (*SourcePolicy, error) {
	p := &SourcePolicy{hostPorts: map[string]bool{}, rackTLS: rackTLS, maxSize: maxSize}
	for _, a := range allow {
		if pr, err := netip.ParsePrefix(a); err == nil {
			p.prefixes = append(p.prefixes, pr.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(a); err == nil {
			p.prefixes = append(p.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("--copy-source-allow %q: want a CIDR (10.0.0.0/24), an IP address or host:port", a)
		}
		p.hostPorts[strings.ToLower(a)] = true
	}
	if len(allow) == 0 {
		p.prefixes = loopback
	}
	return p, nil
}

func (p *SourcePolicy) ipAllowed(ip netip.Addr) bool {
	prefixes := p.prefixes
	if p.hostPorts == nil && prefixes == nil {
		prefixes = loopback // the zero value
	}
	ip = ip.Unmap()
	for _, pr := range prefixes {
		if pr.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckSource refuses, before any connection, a base URL (already checked
// to be scheme://host:port) that the policy does not allow: an https URL
// when rack members over TLS are allowed passes (the handshake decides), a
// listed host:port passes, else every address of the host must be in an
// allowed prefix. A host name that does not resolve now passes here and
// is decided when the fetch connects.
func (p *SourcePolicy) CheckSource(baseURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil {
		return fmt.Errorf("%w: the URL does not parse", ErrSourceNotAllowed)
	}
	if u.Scheme == "https" && p.rackTLS {
		return nil
	}
	if p.hostPorts[strings.ToLower(u.Host)] {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !p.ipAllowed(ip) {
			return fmt.Errorf("%w: %s is outside --copy-source-allow", ErrSourceNotAllowed, host)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, ip := range ips {
		if !p.ipAllowed(ip) {
			return fmt.Errorf("%w: %s resolves to %s, outside --copy-source-allow", ErrSourceNotAllowed, host, ip)
		}
	}
	return nil
}

// dialer returns the transport's dial functions. A plain connection
// goes only to a listed host:port or to an address in an allowed prefix,
// checked on the address actually connected to (a name that resolves
// elsewhere between the check and the dial is still refused). A TLS
// connection is verified against the rack CA for the URL's host; with
// rackTLS it may go anywhere, else it obeys the plain rules too.
func (p *SourcePolicy) dialer(tlsr *transport.Reloader) (dial, dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)) {
	guarded := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !p.ipAllowed(ap.Addr()) {
				return ErrSourceNotAllowed
			}
			return nil
		}}
	open := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p.hostPorts[strings.ToLower(addr)] {
			return open.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
	dialTLS = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := dial
		if p.rackTLS {
			d = open.DialContext
		}
		return handshake(ctx, d, tlsr, network, addr)
	}
	return dial, dialTLS
}

// handshake dials addr with dial and completes a TLS handshake verified
// for addr's host.
func handshake(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	tlsr *transport.Reloader, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, tlsr.ClientConfig(host))
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// newTransport is DefaultHTTPClient's transport with the given dials.
func newTransport(dial, dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = dial
	t.DialTLSContext = dialTLS
	t.DisableCompression = true
	t.MaxIdleConnsPerHost = 16
	t.MaxResponseHeaderBytes = 64 << 10
	return t
}

// noRedirects makes a client answer a 3xx with the 3xx itself.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewHTTPClient returns an http.Client for calls to depotd's APIs (the
// coordinator's calls to sleds, the CLI): a 5 s connect timeout, no
// overall timeout (bodies are long), no proxy, no transparent gzip, no
// redirects followed, and https verified per host against tlsr's CA while
// presenting its client certificate (nil: system roots, no certificate).
func NewHTTPClient(tlsr *transport.Reloader) *http.Client {
	open := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dialTLS := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return handshake(ctx, open.DialContext, tlsr, network, addr)
	}
	return &http.Client{Transport: newTransport(open.DialContext, dialTLS), CheckRedirect: noRedirects}
}

// NewFetcher returns the Fetcher of a sled's copy-from-depot jobs: every fetch
// obeys policy (where it may connect, the largest Content-Length), https
// sources are verified against tlsr's CA and see its client certificate,
// and redirects are never followed.
func NewFetcher(policy *SourcePolicy, tlsr *transport.Reloader) Fetcher {
	dial, dialTLS := policy.dialer(tlsr)
	t := newTransport(dial, dialTLS)
	// One connection per fetch: a source that sends more than it declared
	// leaves bytes that net/http would read (and log, verbatim) on an idle
	// kept-alive connection. A copy is one long transfer; reuse buys little.
	t.DisableKeepAlives = true
	return Fetcher{HTTP: &http.Client{Transport: t, CheckRedirect: noRedirects}, Policy: policy}
}

// CheckSource applies the Fetcher's policy (none: every source passes).
func (p Fetcher) CheckSource(baseURL string) error {
	if p.Policy == nil {
		return nil
	}
	return p.Policy.CheckSource(baseURL)
}

// checkLength applies the policy's size rules to a response.
func (p Fetcher) checkLength(n int64) error {
	if p.Policy == nil {
		return nil
	}
	if n < 0 {
		return ErrSourceNoLength
	}
	if p.Policy.maxSize > 0 && n > p.Policy.maxSize {
		return fmt.Errorf("%w: %d bytes declared, the limit is %d (--max-artifact-size)", ErrSourceTooLarge, n, p.Policy.maxSize)
	}
	return nil
}

// sourceError replaces err, from a fetch, by one whose text is Depot's
// own: a source's answer (its body, a malformed status line, names in its
// certificate) never reaches a job error, a log line or a response.
func sourceError(err error) error {
	var ae *APIError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var errno syscall.Errno
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		e := &SourceError{Status: ae.Status}
		if api.ErrForCode(ae.Code) != nil {
			e.Code = ae.Code
		}
		return e
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the source's body ended early: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, ErrSourceNotAllowed):
		return fmt.Errorf("connect: %w (outside --copy-source-allow)", ErrSourceNotAllowed)
	case errors.Is(err, ErrStalled), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		for _, known := range []error{ErrStalled, context.Canceled, context.DeadlineExceeded} {
			if errors.Is(err, known) {
				return known
			}
		}
	case errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return ErrSourceTLS
	case errors.As(err, &errno):
		return fmt.Errorf("%w: %w", ErrSourceUnreachable, errno)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: timed out", ErrSourceUnreachable)
	}
	return ErrSourceProtocol
}

// Fetcher fetches artifacts from copy sources' repo-depot APIs. Make it
// with NewFetcher, which enforces a SourcePolicy; the zero value (HTTP nil:
// a shared DefaultHTTPClient, Policy nil: any source, any length) is for
// tests and trusted set-ups. Either way redirects are not followed and
// errors carry nothing the source sent. A Fetcher sets no stall timeout of
// its own: the sled's copy job has a stall watchdog. Safe for concurrent
// use.
type Fetcher struct {
	HTTP   *http.Client
	Policy *SourcePolicy
}

// Fetch GETs {baseURL}/artifact/sha256/{hex} and returns the body and its
// Content-Length. The caller closes body. With a Policy, the source must
// be allowed and declare a Content-Length within the limit; the body then
// ends at that length whatever the source sends.
func (p Fetcher) Fetch(ctx context.Context, baseURL string, d api.Digest) (io.ReadCloser, int64, error) {
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
func (p Fetcher) Head(ctx context.Context, baseURL string, d api.Digest) (int64, error) {
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

// defaultHTTP is the *http.Client of a zero Fetcher, shared so that its
// connections are reused.
var defaultHTTP = sync.OnceValue(DefaultHTTPClient)

func (p Fetcher) client(baseURL string) *Client {
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
