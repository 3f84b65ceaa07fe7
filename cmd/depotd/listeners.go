package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"depot/server"
	"depot/server/transport"
)

// netOptions are the flags of the listeners and of outbound calls.
type netOptions struct {
	tlsCert, tlsKey             string
	tlsClientCA                 string
	tlsCA                       string
	tlsClientCert, tlsClientKey string
	tlsReloadInterval           time.Duration
	insecurePlaintext           bool
	// The operator listener's own certificate, if it needs one the
	// people using it trust (their CA rather than the rack's).
	operatorTLSCert, operatorTLSKey string

	// operatorTLS serves the operator listener: its own certificate, or
	// the rack's Reloader; set by reloader.
	operatorTLS *transport.Reloader

	copySourceAllow      stringList
	maxConcurrentWrites  int
	minBodyRateFlag      byteSize
	noMinBodyRate        bool
	minBodyRateWindow    time.Duration
	downloadStallTimeout time.Duration
	maxConnections       int
}

func (n *netOptions) flags(fs *flag.FlagSet) {
	n.minBodyRateFlag = server.DefaultMinBodyRate
	fs.StringVar(&n.tlsCert, "tls-cert", "", "PEM `file` of the listeners' certificate (chain, leaf first); with --tls-key, every listener speaks TLS 1.3")
	fs.StringVar(&n.tlsKey, "tls-key", "", "PEM `file` of --tls-cert's private key")
	fs.StringVar(&n.tlsClientCA, "tls-client-ca", "", "PEM `file` of the CA(s) client certificates must chain to: the sled and depot listeners then require one (mTLS), and sled-API mutations need the coordinator role")
	fs.StringVar(&n.tlsCA, "tls-ca", "", "PEM `file` of the CA(s) outbound calls (to sleds, to copy sources) verify servers against (default: the system roots)")
	fs.StringVar(&n.tlsClientCert, "tls-client-cert", "", "PEM `file` of the certificate presented on outbound calls (default --tls-cert)")
	fs.StringVar(&n.tlsClientKey, "tls-client-key", "", "PEM `file` of --tls-client-cert's key (default --tls-key)")
	fs.StringVar(&n.operatorTLSCert, "operator-tls-cert", "", "PEM `file` of the operator listener's own certificate (default --tls-cert); client certificates there are still checked against --tls-client-ca")
	fs.StringVar(&n.operatorTLSKey, "operator-tls-key", "", "PEM `file` of --operator-tls-cert's key")
	fs.DurationVar(&n.tlsReloadInterval, "tls-reload-interval", time.Second, "how often the TLS files are re-read (a change is served to new connections; SIGHUP re-reads at once)")
	fs.BoolVar(&n.insecurePlaintext, "insecure-plaintext", false, "allow plain HTTP on a non-loopback address (warned at every start)")
	fs.Var(&n.copySourceAllow, "copy-source-allow", "copy-from-depot sources allowed: a CIDR, an IP address or `host:port`, repeatable (default: loopback only); with --tls-ca, https sources whose certificate verifies are allowed too")
	fs.IntVar(&n.maxConcurrentWrites, "max-concurrent-writes", server.DefaultMaxConcurrentWrites, "artifact PUTs, copies and repository uploads running at once; more get 503 SERVER_BUSY")
	fs.Var(&n.minBodyRateFlag, "min-body-rate", "a request body averaging less than this many bytes a second over --min-body-rate-window is cut with 408 (`size`)")
	fs.BoolVar(&n.noMinBodyRate, "no-min-body-rate", false, "turn the body-rate check off (a body stalled for a minute is still cut)")
	fs.DurationVar(&n.minBodyRateWindow, "min-body-rate-window", server.DefaultMinBodyRateWindow, "the window over which --min-body-rate is averaged")
	fs.DurationVar(&n.downloadStallTimeout, "download-stall-timeout", server.DefaultDownloadStallTimeout, "a download whose reader takes nothing for this long is dropped")
	fs.IntVar(&n.maxConnections, "max-connections", 1024, "open connections per listener; more are closed at once")
}

func (n *netOptions) minBodyRate() int64 {
	if n.noMinBodyRate {
		return -1
	}
	return int64(n.minBodyRateFlag)
}

// reloader loads the TLS files (nil, nil when none is given) and keeps
// them fresh: polled every --tls-reload-interval, and at once on SIGHUP,
// until ctx ends. It also sets n.operatorTLS.
func (n *netOptions) reloader(ctx context.Context, log *slog.Logger) (*transport.Reloader, error) {
	if (n.operatorTLSCert == "") != (n.operatorTLSKey == "") {
		return nil, errors.New("TLS: --operator-tls-cert and --operator-tls-key go together")
	}
	files := transport.Files{
		Cert: n.tlsCert, Key: n.tlsKey, ClientCA: n.tlsClientCA, CA: n.tlsCA,
		ClientCert: n.tlsClientCert, ClientKey: n.tlsClientKey,
	}
	var all []*transport.Reloader
	var r *transport.Reloader
	if files != (transport.Files{}) {
		var err error
		if r, err = transport.NewReloader(files, log); err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		all = append(all, r)
	}
	n.operatorTLS = r
	if n.operatorTLSCert != "" {
		op, err := transport.NewReloader(transport.Files{Cert: n.operatorTLSCert, Key: n.operatorTLSKey, ClientCA: n.tlsClientCA}, log.With("listener", "operator"))
		if err != nil {
			return nil, fmt.Errorf("TLS (operator listener): %w", err)
		}
		n.operatorTLS = op
		all = append(all, op)
	}
	if len(all) == 0 {
		return nil, nil
	}
	for _, x := range all {
		go x.Watch(ctx, n.tlsReloadInterval)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				for _, x := range all {
					x.ReloadAndLog("SIGHUP", nil)
				}
			}
		}
	}()
	return r, nil
}

// listeners are the bound listeners of one daemon; operator is nil
// without the coordinator role. tls tells whether the depot listener
// speaks it (for its URL).
type listeners struct {
	sled, depot, operator net.Listener
	tls                   bool
}

func (l *listeners) close() {
	for _, ln := range []net.Listener{l.sled, l.depot, l.operator} {
		if ln != nil {
			ln.Close()
		}
	}
}

func (l *listeners) depotURL() string {
	if l.tls {
		return "https://" + l.depot.Addr().String()
	}
	return "http://" + l.depot.Addr().String()
}

func (l *listeners) operatorAddr() string {
	if l.operator == nil {
		return "none"
	}
	return l.operator.Addr().String()
}

// errPlaintext refuses plain HTTP off loopback.
var errPlaintext = errors.New("refusing plain HTTP on a non-loopback address")

// openListeners binds the sled and depot listeners and, on a coordinator,
// the operator one; caps their connections; wraps them in TLS when a
// certificate is given; and refuses plain HTTP off loopback unless
// --insecure-plaintext. The sled and depot listeners require a client
// certificate when --tls-client-ca is given; the operator listener
// verifies one if offered (an identity for the operator API's auth).
func openListeners(o options, tlsr *transport.Reloader, log *slog.Logger) (*listeners, error) {
	l := &listeners{tls: tlsr.ServesTLS()}
	type spec struct {
		flag, addr, api string
		auth            tls.ClientAuthType
		r               *transport.Reloader
		dst             *net.Listener
	}
	specs := []spec{
		{"--listen", o.listen, "sled API", tls.RequireAndVerifyClientCert, tlsr, &l.sled},
		{"--depot-listen", o.depotListen, "repo-depot API", tls.RequireAndVerifyClientCert, tlsr, &l.depot},
	}
	if o.coordinator {
		specs = append(specs, spec{"--operator-listen", o.operatorListen, "operator API", tls.VerifyClientCertIfGiven, o.net.operatorTLS, &l.operator})
	}
	for _, sp := range specs {
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("%s: %w", sp.flag, err)
		}
		serveTLS := sp.r.ServesTLS()
		if !serveTLS && !transport.IsLoopback(ln.Addr()) {
			if !o.net.insecurePlaintext {
				ln.Close()
				l.close()
				return nil, fmt.Errorf("%w: %s %s would serve the %s in plain HTTP to the network; give --tls-cert and --tls-key (see README, \"On a rack network\"), bind a loopback address, or pass --insecure-plaintext", errPlaintext, sp.flag, ln.Addr(), sp.api)
			}
			log.Warn("INSECURE: serving plain HTTP on a non-loopback address (--insecure-plaintext)", "flag", sp.flag, "address", ln.Addr().String(), "api", sp.api)
		}
		if serveTLS && !sp.r.RequiresClientCerts() && sp.auth == tls.RequireAndVerifyClientCert && !transport.IsLoopback(ln.Addr()) {
			log.Warn("without --tls-client-ca this listener takes every TLS client, and the sled API's changes need no coordinator certificate",
				"flag", sp.flag, "address", ln.Addr().String(), "api", sp.api)
		}
		ln = transport.LimitListener(ln, o.net.maxConnections)
		if serveTLS {
			ln = tls.NewListener(ln, sp.r.ServerConfig(sp.auth))
		}
		*sp.dst = ln
	}
	return l, nil
}
