package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the PEM files of one daemon. Every field is optional, but
// Cert and Key go together, and so do ClientCert and ClientKey.
type Files struct {
	// Cert and Key are the serving certificate (chain first, leaf first)
	// and its private key.
	Cert, Key string
	// ClientCA, if set, makes listeners that ask for it require a client
	// certificate that chains to one of these CAs (mTLS).
	ClientCA string
	// CA is the bundle outbound calls verify servers against.
	CA string
	// ClientCert and ClientKey are presented on outbound calls; empty
	// means Cert and Key (a sled's certificate serves both ways when it
	// has both usages).
	ClientCert, ClientKey string
}

func (f Files) clientPair() (string, string) {
	if f.ClientCert != "" {
		return f.ClientCert, f.ClientKey
	}
	return f.Cert, f.Key
}

func (f Files) paths() []string {
	cc, ck := f.clientPair()
	return []string{f.Cert, f.Key, f.ClientCA, f.CA, cc, ck}
}

// Validate reports flag combinations that cannot work.
func (f Files) Validate() error {
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if (f.ClientCert == "") != (f.ClientKey == "") {
		return errors.New("--tls-client-cert and --tls-client-key go together")
	}
	if f.ClientCA != "" && f.Cert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key (client certificates are asked for only over TLS)")
	}
	return nil
}

// content is one loaded, checked set of files. Immutable once built.
type content struct {
	sum        [32]byte // over every file's bytes, to skip no-op reloads
	cert       *tls.Certificate
	clientCert *tls.Certificate
	clientCAs  *x509.CertPool
	roots      *x509.CertPool
	// byAuth are the configs handed to new handshakes, by how client
	// certificates are treated; nil without a serving certificate.
	byAuth map[tls.ClientAuthType]*tls.Config
}

// Reloader serves the newest good set of Files. Safe for concurrent use.
type Reloader struct {
	files Files
	log   *slog.Logger
	cur   atomic.Pointer[content]
	mu    sync.Mutex // serialises Reload
	// reloads and failures count Reload outcomes, for tests and logs.
	reloads, failures atomic.Int64
}

// NewReloader loads files once; an error means the set is unusable and
// nothing is served.
func NewReloader(files Files, log *slog.Logger) (*Reloader, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{files: files, log: log}
	c, err := load(files)
	if err != nil {
		return nil, err
	}
	r.cur.Store(c)
	return r, nil
}

// ServesTLS reports whether a serving certificate is configured.
func (r *Reloader) ServesTLS() bool { return r != nil && r.files.Cert != "" }

// RequiresClientCerts reports whether a client CA is configured.
func (r *Reloader) RequiresClientCerts() bool { return r != nil && r.files.ClientCA != "" }

// HasCA reports whether outbound calls verify against a configured CA.
func (r *Reloader) HasCA() bool { return r != nil && r.files.CA != "" }

// Reload re-reads every file. Unchanged bytes do nothing; a set that fails
// to load is logged and returned, and the previous set keeps serving. It
// returns whether a new set was swapped in.
func (r *Reloader) Reload() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum, err := sumFiles(r.files)
	if err != nil {
		r.failures.Add(1)
		return false, err
	}
	if sum == r.cur.Load().sum {
		return false, nil
	}
	c, err := load(r.files)
	if err != nil {
		r.failures.Add(1)
		return false, err
	}
	r.cur.Store(c)
	r.reloads.Add(1)
	return true, nil
}

// Watch calls Reload every interval until ctx is done, logging what
// changed or why a changed set was refused (once per distinct set).
func (r *Reloader) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastBad [32]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.ReloadAndLog("file change", &lastBad)
	}
}

// ReloadAndLog is Reload with a log line; lastBad, if not nil, suppresses
// repeating the same refusal.
func (r *Reloader) ReloadAndLog(why string, lastBad *[32]byte) {
	swapped, err := r.Reload()
	switch {
	case err != nil:
		sum, _ := sumFiles(r.files)
		if lastBad != nil && sum == *lastBad {
			return
		}
		if lastBad != nil {
			*lastBad = sum
		}
		r.log.Error("TLS files not reloaded; the previous certificates keep serving", "why", why, "error", err)
	case swapped:
		r.log.Info("TLS files reloaded", "why", why, "not_after", r.NotAfter())
	}
}

// NotAfter returns the expiry of the serving certificate (zero without
// one).
func (r *Reloader) NotAfter() time.Time {
	if c := r.cur.Load(); c.cert != nil && c.cert.Leaf != nil {
		return c.cert.Leaf.NotAfter
	}
	return time.Time{}
}

// ServerConfig returns the tls.Config of a listener. auth says what is
// done with client certificates when a ClientCA is configured:
// tls.RequireAndVerifyClientCert (mTLS: no certificate of the CA, no
// handshake), tls.VerifyClientCertIfGiven (one that is given must verify),
// or tls.NoClientCert; without a ClientCA none is asked for. Every
// handshake gets the set current at that moment (GetConfigForClient), so
// rotation needs no restart and open connections are untouched. Call it
// only when ServesTLS.
func (r *Reloader) ServerConfig(auth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := r.cur.Load()
			if cfg := c.byAuth[auth]; cfg != nil {
				return cfg, nil
			}
			return c.byAuth[tls.NoClientCert], nil
		},
	}
}

// ClientConfig returns the tls.Config of one outbound connection to
// serverName (the host of the URL, a DNS name or an IP address): the
// server is verified against CA as it is at handshake time (system roots
// without a CA), and the client pair is presented when the server asks. A
// nil Reloader verifies against the system roots and presents nothing.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	roots := func() *x509.CertPool { return nil }
	client := func() *tls.Certificate { return nil }
	if r != nil {
		roots = func() *x509.CertPool { return r.cur.Load().roots }
		client = func() *tls.Certificate { return r.cur.Load().clientCert }
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		NextProtos: []string{"http/1.1"},
		// Verification is done in VerifyConnection against the current
		// roots and serverName; a fixed RootCAs could not follow a CA
		// rotation, and crypto/tls checks no name for an IP address
		// given as ServerName.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs, serverName, roots())
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := client(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		},
	}
}

// verifyServer is what crypto/tls does without InsecureSkipVerify, with
// roots read at handshake time.
func verifyServer(cs tls.ConnectionState, serverName string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server sent no certificate")
	}
	if serverName == "" {
		return errors.New("no server name to verify the certificate against")
	}
	opts := x509.VerifyOptions{
		Roots:         roots,      // nil: the system roots
		DNSName:       serverName, // an IP address is checked against the IP SANs
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

func sumFiles(f Files) ([32]byte, error) {
	h := sha256.New()
	for _, p := range f.paths() {
		if p == "" {
			h.Write([]byte{0})
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return [32]byte{}, err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return [32]byte(h.Sum(nil)), nil
}

func load(f Files) (*content, error) {
	sum, err := sumFiles(f)
	if err != nil {
		return nil, err
	}
	c := &content{sum: sum}
	if f.Cert != "" {
		if c.cert, err = loadPair(f.Cert, f.Key); err != nil {
			return nil, err
		}
	}
	if cc, ck := f.clientPair(); cc != "" {
		if c.clientCert, err = loadPair(cc, ck); err != nil {
			return nil, err
		}
	}
	if f.ClientCA != "" {
		if c.clientCAs, err = loadPool(f.ClientCA); err != nil {
			return nil, err
		}
	}
	if f.CA != "" {
		if c.roots, err = loadPool(f.CA); err != nil {
			return nil, err
		}
	}
	if c.cert != nil {
		base := &tls.Config{
			MinVersion:   tls.VersionTLS13,
			NextProtos:   []string{"h2", "http/1.1"},
			Certificates: []tls.Certificate{*c.cert},
		}
		c.byAuth = map[tls.ClientAuthType]*tls.Config{tls.NoClientCert: base}
		if c.clientCAs != nil {
			for _, auth := range []tls.ClientAuthType{tls.RequireAndVerifyClientCert, tls.VerifyClientCertIfGiven} {
				cfg := base.Clone()
				cfg.ClientAuth, cfg.ClientCAs = auth, c.clientCAs
				c.byAuth[auth] = cfg
			}
		}
	}
	return c, nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	// Leaf is filled by LoadX509KeyPair since Go 1.23.
	return &cert, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) || !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
