package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"depot/depot"
	"depot/server"
	"depot/server/api"
	"depot/server/client"
	"depot/server/metrics"
	"depot/server/openapi/openapitest"
	"depot/server/remote"
	"depot/server/servertest"
	"depot/store"
	"depot/tuf"
)

// env is one running server on real loopback listeners.
type env struct {
	sledAddr, depotAddr string
	sledURL, depotURL   string         // "http://" + the addresses
	sled, depot         *client.Client // clients of the two APIs
	// opURL and op reach the operator API: its own listener with the
	// coordinator role, else the sled listener (which answers
	// NOT_COORDINATOR there).
	opURL   string
	op      *client.Client
	mirrors []string
	store   *store.Store       // nil when the server runs over a fake
	svc     *depot.Sled        // nil when the server runs over a fake
	coord   *depot.Coordinator // nil without the coordinator role
	rep     *depot.Replicator  // nil without the coordinator role
	metrics *metrics.Metrics   // nil unless withMetrics
	logs    *servertest.Buffer
	cancel  context.CancelFunc
	served  chan error // Serve's result, once
}

// envConfig is what the options of newEnv set.
type envConfig struct {
	server      server.Config
	fake        server.SledService // serve this instead of a real sled
	sled        depot.SledOptions
	coordinator bool
	metrics     bool
	// transport, if set, carries the env's clients' requests and the
	// coordinator's requests to sleds (the OpenAPI validator's).
	transport http.RoundTripper
	// minReplication is the coordinator's quorum (0: 1).
	minReplication int
	// storeFS, if set, is the store's file system per mirror (faults).
	storeFS func(root string) store.FS
	// spool, if set, wraps the store as the coordinator's spooler.
	spool func(*store.Store) depot.Spooler
	// tuf is how the coordinator opens uploads.
	tuf tuf.Options
}

type envOpt func(*envConfig)

func spoolerOf(ec envConfig, st *store.Store) depot.Spooler {
	if ec.spool != nil {
		return ec.spool(st)
	}
	return st
}

// newEnv starts a server over a real depot.Sled on a real store with two
// fresh mirrors (or over a fake, withFake), with the coordinator role if
// withCoordinator. Cleanup shuts it down, closes what it opened, and prints
// the server's log if the test failed.
func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	e := &env{logs: &servertest.Buffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ec := envConfig{server: server.Config{Logger: log, Version: "test", ShutdownTimeout: 2 * time.Second}}
	for _, o := range opts {
		o(&ec)
	}
	cfg := ec.server
	var hc *http.Client // nil: the clients' default
	if ec.transport != nil {
		hc = &http.Client{Transport: ec.transport}
	}
	sledLn := servertest.Listen(t)
	depotLn := servertest.Listen(t)
	e.sledAddr, e.depotAddr = sledLn.Addr().String(), depotLn.Addr().String()
	e.sledURL, e.depotURL = "http://"+e.sledAddr, "http://"+e.depotAddr
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
	if ec.fake == nil {
		dir := t.TempDir()
		e.mirrors = []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
		st, err := store.Open(context.Background(), store.Options{Mirrors: e.mirrors, Logger: log, FS: ec.storeFS})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		e.store = st
		closers = append(closers, st.Close)
		so := ec.sled
		so.Store, so.Logger = st, log
		if so.Peer == nil {
			so.Peer = remote.Peer{}
		}
		so.HoldReconciler = so.HoldReconciler || ec.coordinator
		svc, err := depot.NewSled(context.Background(), so)
		if err != nil {
			closeAll()
			t.Fatalf("new sled: %v", err)
		}
		e.svc = svc
		closers = append(closers, svc.Close)
		cfg.Sled = svc
		if ec.coordinator {
			cat, err := depot.OpenCatalog(filepath.Join(dir, "catalog.db"), 0)
			if err != nil {
				closeAll()
				t.Fatalf("open catalog: %v", err)
			}
			closers = append(closers, cat.Close)
			coord, err := depot.NewCoordinator(context.Background(), depot.CoordinatorOptions{
				Catalog: cat, Local: svc, Spool: spoolerOf(ec, st), Logger: log, TUF: ec.tuf,
			})
			if err != nil {
				closeAll()
				t.Fatalf("new coordinator: %v", err)
			}
			svc.StartReconciler()
			e.coord = coord
			e.rep = depot.NewReplicator(coord, depot.ReplicationOptions{
				Local:          depot.LocalSled{Sled: svc, DepotURL: e.depotURL},
				LocalStore:     st,
				ClientFor:      func(r depot.SledRecord) depot.SledClient { return remote.NewSledClient(r.ControlURL, hc) },
				Logger:         log,
				Seed:           1,
				MinReplication: ec.minReplication,
			})
			cfg.Coordinator, cfg.Replicator = e.coord, e.rep
		}
	}
	if ec.metrics {
		src := metrics.Sources{}
		if e.svc != nil {
			src.Mirrors, src.Sled = e.svc.Mirrors, e.svc.Status
		}
		e.metrics = metrics.New(src)
		cfg.Metrics = e.metrics
	}
	var srv *server.Server
	if ec.fake != nil {
		srv = server.NewWithSled(cfg, ec.fake)
	} else {
		srv = server.New(cfg)
	}
	e.sled = client.New(e.sledURL, hc)
	e.depot = client.New(e.depotURL, hc)
	var opLn net.Listener
	e.opURL = e.sledURL
	if ec.coordinator {
		opLn = servertest.Listen(t)
		e.opURL = "http://" + opLn.Addr().String()
	}
	e.op = client.New(e.opURL, hc)
	var ctx context.Context
	ctx, e.cancel = context.WithCancel(context.Background())
	e.served = make(chan error, 1)
	go func() { e.served <- srv.Serve(ctx, sledLn, depotLn, opLn) }()
	t.Cleanup(func() {
		e.cancel()
		select {
		case err := <-e.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
			e.served <- err // for tests that read it themselves
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10s after its context was cancelled")
		}
		closeAll()
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

func withMaxSize(n int64) envOpt { return func(c *envConfig) { c.server.MaxArtifactSize = n } }
func withMaxRepoSize(n int64) envOpt {
	return func(c *envConfig) { c.server.MaxRepoSize = n }
}
func withStall(d time.Duration) envOpt {
	return func(c *envConfig) { c.server.BodyStallTimeout = d }
}
func withShutdownTimeout(d time.Duration) envOpt {
	return func(c *envConfig) { c.server.ShutdownTimeout = d }
}
func withFake(s server.SledService) envOpt { return func(c *envConfig) { c.fake = s } }
func withSledOptions(o depot.SledOptions) envOpt {
	return func(c *envConfig) { c.sled = o }
}
func withCoordinator() envOpt { return func(c *envConfig) { c.coordinator = true } }
func withMetrics() envOpt     { return func(c *envConfig) { c.metrics = true } }
func withTransport(rt http.RoundTripper) envOpt {
	return func(c *envConfig) { c.transport = rt }
}

// blob returns n random bytes and their digest.
func blob(t testing.TB, n int) ([]byte, api.Digest) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b, api.Digest(sha256.Sum256(b))
}

// files lists the regular files under root, relative to it.
func files(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

var artifactFile = regexp.MustCompile(`^artifacts/[0-9a-f]{2}/[0-9a-f]{64}$`)

// checkMirrors fails unless every mirror holds exactly the given artifacts,
// each intact, besides its index, and no temp or stray file.
func (e *env) checkMirrors(t testing.TB, want ...api.Digest) {
	t.Helper()
	for _, m := range e.mirrors {
		var got []string
		for _, f := range files(t, m) {
			switch {
			case f == "index.db", strings.HasPrefix(f, "meta/"): // the index, the config ledger
			case artifactFile.MatchString(f):
				got = append(got, f)
				b, err := os.ReadFile(filepath.Join(m, f))
				if err != nil {
					t.Fatal(err)
				}
				if sum := api.Digest(sha256.Sum256(b)); sum.String() != filepath.Base(f) {
					t.Errorf("mirror %s: %s hashes to %s", m, f, sum)
				}
			default:
				t.Errorf("mirror %s: unexpected file %s", m, f)
			}
		}
		if len(got) != len(want) {
			t.Errorf("mirror %s holds %v, want %d artifacts %v", m, got, len(want), want)
		}
		for _, d := range want {
			if !contains(got, "artifacts/"+d.String()[:2]+"/"+d.String()) {
				t.Errorf("mirror %s lacks %s", m, d)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// waitLog waits (bounded) until the server's log matches re: the request
// log line is written after the handler returned, so once it is there the
// store has cleaned up after the request.
func (e *env) waitLog(t testing.TB, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	for i := 0; i < 500; i++ {
		if rx.MatchString(e.logs.String()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line matching %q within 5s", re)
}

// waitTempFile waits (bounded) until a write is in flight in the store:
// a temp file exists on the first mirror.
func (e *env) waitTempFile(t testing.TB) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if len(files(t, filepath.Join(e.mirrors[0], "tmp"))) > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no temp file within 5s: the upload never reached the store")
}

// raw sends a hand-written request head (and body) on a fresh connection
// and returns the connection and its reader.
func raw(t testing.TB, addr, head string, body []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if len(body) > 0 {
		if _, err := conn.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	return conn, bufio.NewReader(conn)
}

// do sends a plain HTTP request and returns the response with its body read.
func do(t testing.TB, method, url string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return doWith(t, http.DefaultClient, method, url, body, hdr...)
}

// doWith sends one request through hc (a validating client, say), with
// hdr as name, value pairs, and returns the response and its whole body.
func doWith(t testing.TB, hc *http.Client, method, url string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// wantError checks an error answer: status, code, JSON body with a request
// id equal to the header's.
func wantError(t testing.TB, resp *http.Response, body []byte, status int, code string) api.ErrorBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if eb.ErrorCode != code {
		t.Errorf("error_code %q, want %q (message %q)", eb.ErrorCode, code, eb.Message)
	}
	if eb.RequestID == "" || eb.RequestID != resp.Header.Get("X-Request-Id") {
		t.Errorf("request_id %q, header %q", eb.RequestID, resp.Header.Get("X-Request-Id"))
	}
	if eb.Message == "" {
		t.Errorf("empty message")
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	return eb
}

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }

func withTUF(o tuf.Options) envOpt { return func(c *envConfig) { c.tuf = o } }

func withMinReplication(n int) envOpt {
	return func(c *envConfig) { c.minReplication = n }
}

// operatorRequest is one request to an operator route, with a body that
// passes the OpenAPI document.
type operatorRequest struct{ method, path, body string }

// operatorRequests covers every operator route; a daemon without the
// coordinator role must answer each with 404 NOT_COORDINATOR.
var operatorRequests = []operatorRequest{
	{"PUT", "/v1/system/update/repositories?file_name=r.zip", "zip"},
	{"GET", "/v1/system/update/repositories", ""},
	{"GET", "/v1/system/update/repositories/1.0.0", ""},
	{"DELETE", "/v1/system/update/repositories/1.0.0", ""},
	{"POST", "/v1/system/update/trust-roots", `{"signed":{},"signatures":[]}`},
	{"GET", "/v1/system/update/trust-roots", ""},
	{"GET", "/v1/system/update/trust-roots/3f2b9c1e-8d4a-4e1b-9f0a-6c2d7e8f9a0b", ""},
	{"DELETE", "/v1/system/update/trust-roots/3f2b9c1e-8d4a-4e1b-9f0a-6c2d7e8f9a0b", ""},
	{"GET", "/v1/sleds", ""},
	{"GET", "/v1/sleds/b", ""},
	{"PUT", "/v1/sleds/b", `{"control_url":"http://127.0.0.1:1"}`},
	{"DELETE", "/v1/sleds/b", ""},
	{"GET", "/v1/replication/status", ""},
	{"POST", "/v1/replication/activate", ""},
	{"GET", "/v1/audit", ""},
	{"GET", "/v1/tokens", ""},
	{"POST", "/v1/tokens", `{"name":"x","role":"viewer"}`},
	{"DELETE", "/v1/tokens/x", ""},
}

// validating returns a validator of Depot's OpenAPI document, a transport
// that checks every exchange against it, and a client over that transport.
func validating(t testing.TB) (*openapitest.Validator, *openapitest.CheckingTransport, *http.Client) {
	t.Helper()
	v, err := openapitest.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	ct := v.Transport(client.DefaultHTTPClient().Transport)
	return v, ct, &http.Client{Transport: ct}
}
