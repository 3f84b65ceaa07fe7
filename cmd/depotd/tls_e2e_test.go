package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
	"depot/server/transport"
)

// End-to-end tests of issue "Rack network security I" with real depotd
// processes and certificates made by scripts/mkcerts.

var (
	mkcertsOnce sync.Once
	mkcertsBin  string
	mkcertsErr  error
)

// mkcerts runs scripts/mkcerts (built once, next to the depotd under test)
// with -dir dir and args.
func mkcerts(t testing.TB, dir string, args ...string) {
	t.Helper()
	mkcertsOnce.Do(func() {
		mkcertsBin = filepath.Join(filepath.Dir(depotdBin), "mkcerts")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", mkcertsBin, "../../scripts/mkcerts").CombinedOutput()
		if err != nil {
			mkcertsErr = fmt.Errorf("build mkcerts: %v\n%s", err, out)
		}
	})
	if mkcertsErr != nil {
		t.Fatal(mkcertsErr)
	}
	out, err := exec.Command(mkcertsBin, append([]string{"-dir", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mkcerts %v: %v\n%s", args, err, out)
	}
}

// rackCerts makes a CA and, for each name, a certificate for 127.0.0.1
// with the given roles ("name:role,role").
func rackCerts(t testing.TB, specs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sp := range specs {
		name, roles, _ := strings.Cut(sp, ":")
		args := []string{"-name", name, "-san", "127.0.0.1", "-san", "localhost"}
		for r := range strings.SplitSeq(roles, ",") {
			if r != "" {
				args = append(args, "-role", r)
			}
		}
		mkcerts(t, dir, args...)
	}
	return dir
}

// tlsHTTP returns an http.Client that verifies against dir's CA and
// presents name's certificate ("" for none).
func tlsHTTP(t testing.TB, dir, name string) *http.Client {
	t.Helper()
	files := transport.Files{CA: filepath.Join(dir, "ca.crt")}
	if name != "" {
		files.ClientCert, files.ClientKey = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	}
	r, err := transport.NewReloader(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	return client.NewHTTPClient(r)
}

// tlsFlags are the flags of a daemon serving name's certificate with mTLS.
func tlsFlags(dir, name string) []string {
	return []string{
		"--tls-cert", filepath.Join(dir, name+".crt"), "--tls-key", filepath.Join(dir, name+".key"),
		"--tls-client-ca", filepath.Join(dir, "ca.crt"), "--tls-ca", filepath.Join(dir, "ca.crt"),
		"--tls-reload-interval", "100ms",
	}
}

// startTLSDaemon starts depotd with name's certificate and mTLS; its
// clients present the certificate as (the coordinator's, usually).
func startTLSDaemon(t testing.TB, dataDir, certs, name, as string, extra ...string) *daemon {
	t.Helper()
	d := startDaemon(t, dataDir, append(tlsFlags(certs, name), extra...)...)
	https := func(u string) string { return strings.Replace(u, "http://", "https://", 1) }
	d.sledURL, d.depotURL, d.opURL = https(d.sledURL), https(d.depotURL), https(d.opURL)
	hc := tlsHTTP(t, certs, as)
	d.sled, d.depot, d.op = client.New(d.sledURL, hc), client.New(d.depotURL, hc), client.New(d.opURL, hc)
	return d
}

func TestTLS_RackReplicatesOverMTLSAndRefusesStrangers(t *testing.T) {
	certs := rackCerts(t, "coordinator:coordinator,sled,operator", "sled0:sled", "sled1:sled", "sled2:sled", "noroles:")
	// An expired certificate of the rack CA, and one of another CA.
	mkcerts(t, certs, "-name", "expired", "-role", "coordinator", "-san", "127.0.0.1", "-expired")
	foreign := rackCerts(t, "intruder:coordinator")

	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "7.0.0", 3, 1<<20)
	var sleds []*daemon
	args := []string{"--trusted-root", root, "--replication-period", "1h", "--min-sled-replication", "3"}
	for i := range 3 {
		s := startTLSDaemon(t, t.TempDir(), certs, fmt.Sprintf("sled%d", i), "coordinator", "--coordinator=false")
		sleds = append(sleds, s)
		args = append(args, "--sled", fmt.Sprintf("control=%s,depot=%s,id=sled%d", s.sledURL, s.depotURL, i))
	}
	coord := startTLSDaemon(t, t.TempDir(), certs, "coordinator", "coordinator", args...)
	res := uploadFile(t, coord.op, repo)
	if res.Status != depot.UploadInserted {
		t.Fatalf("upload = %+v", res)
	}
	p := waitRepoState(t, coord.op, "7.0.0", depot.RepoComplete, 90*time.Second)
	if p.InService != 4 {
		t.Fatalf("progress = %+v", p)
	}
	ctx := context.Background()
	copies := 0
	for i, s := range sleds {
		_, list, err := s.sled.ListArtifacts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, dg := range digests {
			if list[dg] != 2 {
				t.Fatalf("sled %d lists %s with %d copies, want 2", i, dg, list[dg])
			}
		}
		jobs, err := s.sled.Copies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.State == depot.CopySucceeded && strings.HasPrefix(j.Source, "https://") {
				copies++
			}
		}
	}
	// Three artifacts on four sleds with a quorum of three: the fourth
	// holder of each gets it by a sled-to-sled copy.
	if copies < len(digests) {
		t.Fatalf("%d sled-to-sled copies over https, want at least %d", copies, len(digests))
	}

	// Refused in the handshake: no certificate, an expired one, a foreign
	// CA's. Each is tried on the sled and the depot listener.
	for _, c := range []struct {
		name string
		hc   *http.Client
	}{
		{"no certificate", tlsHTTP(t, certs, "")},
		{"expired certificate", tlsHTTP(t, certs, "expired")},
		{"foreign CA", foreignClient(t, certs, foreign)},
	} {
		for _, u := range []string{sleds[0].sledURL + "/status", sleds[0].depotURL + "/artifact/sha256/" + digests[0].String()} {
			resp, err := c.hc.Get(u)
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s: GET %s = %d, want a refused handshake", c.name, u, resp.StatusCode)
			}
		}
	}

	// A sled's certificate reads, but may not change another sled.
	asSled := client.New(sleds[1].sledURL, tlsHTTP(t, certs, "sled0"))
	if _, err := asSled.Status(ctx); err != nil {
		t.Fatalf("a rack member's read: %v", err)
	}
	var ae *client.APIError
	err := asSled.PutConfig(ctx, api.Config{Generation: 1 << 40})
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != api.CodeForbidden || !strings.Contains(ae.Message, "coordinator") {
		t.Fatalf("sled certificate putting a config: %v", err)
	}
	for _, call := range []func() error{
		func() error { return asSled.DeleteArtifact(ctx, digests[0]) },
		func() error { return asSled.CopyFromDepot(ctx, digests[0], nil, sleds[0].depotURL) },
		func() error { _, err := asSled.StartScrub(ctx); return err },
		func() error { _, err := asSled.PutArtifact(ctx, digests[0], strings.NewReader("x"), 1); return err },
	} {
		if err := call(); !errors.As(err, &ae) || ae.Code != api.CodeForbidden {
			t.Errorf("sled certificate calling a coordinator route: %v", err)
		}
	}
	// A certificate without roles reads a depot listener (any rack member).
	rc, _, err := client.New(sleds[1].depotURL, tlsHTTP(t, certs, "noroles")).GetArtifact(ctx, digests[0])
	if err != nil {
		t.Fatalf("rack member download: %v", err)
	}
	rc.Close()
	// Nothing changed on sled 1.
	cfg, err := sleds[1].sled.GetConfig(ctx)
	if err != nil || cfg.Generation >= 1<<40 {
		t.Fatalf("sled 1 config = %+v, %v", cfg, err)
	}
}

// foreignClient verifies servers against the rack CA but presents the
// intruder's certificate of another CA.
func foreignClient(t testing.TB, rackDir, foreignDir string) *http.Client {
	t.Helper()
	r, err := transport.NewReloader(transport.Files{
		CA:         filepath.Join(rackDir, "ca.crt"),
		ClientCert: filepath.Join(foreignDir, "intruder.crt"), ClientKey: filepath.Join(foreignDir, "intruder.key"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return client.NewHTTPClient(r)
}

// zeroes is an endless reader of zero bytes.
type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestTLS_CertificateRotationDuringDownload(t *testing.T) {
	// 1 GiB as the issue asks; a race-built daemon moves it at a quarter
	// of the speed, so the race suite downloads 256 MiB (the rotation
	// still lands in the middle of it).
	size := int64(1 << 30)
	if raceEnabled {
		size = 256 << 20
	}
	if testing.Short() {
		size = 64 << 20
	}
	certs := rackCerts(t, "server:sled", "next:sled", "coordinator:coordinator")
	served := t.TempDir()
	for _, ext := range []string{".crt", ".key"} {
		copyFile(t, filepath.Join(certs, "server"+ext), filepath.Join(served, "server"+ext))
	}
	d := startDaemon(t, t.TempDir(),
		"--coordinator=false", "--max-artifact-size", "2GiB",
		"--tls-cert", filepath.Join(served, "server.crt"), "--tls-key", filepath.Join(served, "server.key"),
		"--tls-client-ca", filepath.Join(certs, "ca.crt"), "--tls-reload-interval", "100ms")
	hc := tlsHTTP(t, certs, "coordinator")
	sledURL := strings.Replace(d.sledURL, "http://", "https://", 1)
	depotURL := strings.Replace(d.depotURL, "http://", "https://", 1)
	ctx := context.Background()

	h := sha256.New()
	if _, err := io.CopyN(h, zeroes{}, size); err != nil {
		t.Fatal(err)
	}
	dg := api.Digest(h.Sum(nil))
	if _, err := client.New(sledURL, hc).PutArtifact(ctx, dg, io.LimitReader(zeroes{}, size), size); err != nil {
		t.Fatal(err)
	}

	before := serverSerial(t, d.depotURL, certs)
	rc, n, err := client.New(depotURL, hc).GetArtifact(ctx, dg)
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	defer rc.Close()
	got := sha256.New()
	if _, err := io.CopyN(got, rc, size/8); err != nil {
		t.Fatal(err)
	}
	// Rotate: key, then certificate, each renamed into place (a reload
	// between the two sees a mismatched pair and keeps the old one).
	for _, ext := range []string{".key", ".crt"} {
		tmp := filepath.Join(served, "tmp"+ext)
		copyFile(t, filepath.Join(certs, "next"+ext), tmp)
		if err := os.Rename(tmp, filepath.Join(served, "server"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 20*time.Second, "new connections see the new certificate", func() bool {
		return serverSerial(t, d.depotURL, certs) != before
	})
	// The download that began before the rotation finishes intact.
	if _, err := io.Copy(got, rc); err != nil {
		t.Fatalf("download across the rotation: %v", err)
	}
	if api.Digest(got.Sum(nil)) != dg {
		t.Fatal("downloaded bytes differ")
	}
	waitUntil(t, 10*time.Second, "the reload logged", func() bool {
		return strings.Contains(d.log.String(), "TLS files reloaded")
	})
}

// serverSerial returns the serial number of the certificate a new TLS
// connection to addr ("http://host:port") is served.
func serverSerial(t testing.TB, addr, certs string) string {
	t.Helper()
	r, err := transport.NewReloader(transport.Files{
		CA: filepath.Join(certs, "ca.crt"), ClientCert: filepath.Join(certs, "coordinator.crt"), ClientKey: filepath.Join(certs, "coordinator.key"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(addr, "http://"), r.ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLS_PlaintextOffLoopbackRefused(t *testing.T) {
	for _, flag := range []string{"--listen", "--depot-listen", "--operator-listen"} {
		d := launch(t, t.TempDir(), flag, "0.0.0.0:0")
		if code := d.wait(t, 15*time.Second); code != 1 {
			t.Fatalf("%s 0.0.0.0:0: exit %d, want 1", flag, code)
		}
		if !strings.Contains(d.log.String(), "refusing plain HTTP on a non-loopback address") || !strings.Contains(d.log.String(), flag) {
			t.Fatalf("%s: message does not say why:\n%s", flag, d.log)
		}
	}
	// With --insecure-plaintext it starts, and warns.
	d := startDaemon(t, t.TempDir(), "--depot-listen", "0.0.0.0:0", "--insecure-plaintext")
	if !strings.Contains(d.log.String(), "INSECURE") {
		t.Fatalf("no warning:\n%s", d.log)
	}
	d.stop(t)
}

// hostileSource is one kind of misbehaving copy source.
type hostileSource struct {
	name string
	// serve answers GET /artifact/sha256/{d}; nil: a raw TCP service.
	serve http.HandlerFunc
	raw   func(net.Conn)
}

const secret = "TOP-SECRET-7f3a"

func TestCopySource_SSRF(t *testing.T) {
	data, dg := randomBlob(256<<10, 9)
	good := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	sources := []hostileSource{
		{name: "redirect", serve: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, good+r.URL.Path, http.StatusFound)
		}},
		{name: "no Content-Length", serve: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush() // chunked from here
			w.Write(data)
		}},
		{name: "more than declared", raw: func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(data)-1000)
			c.Write(data)
			c.Write([]byte(secret))
		}},
		{name: "500 with a secret body", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(api.ErrorCodeHeader, secret)
			w.WriteHeader(500)
			fmt.Fprintf(w, `{"error_code":%q,"message":%q} %s`, secret, secret, secret)
		}},
		{name: "over the size limit", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(8<<20))
			w.WriteHeader(200)
		}},
		{name: "non-HTTP service on loopback", raw: func(c net.Conn) {
			fmt.Fprintf(c, "SSH-2.0-OpenSSH_9.6 %s\r\n", secret)
		}},
	}
	d := startDaemon(t, t.TempDir(), "--coordinator=false", "--max-artifact-size", "1MiB")
	ctx := context.Background()
	for _, src := range sources {
		var base string
		if src.serve != nil {
			base = httptestServer(t, src.serve)
		} else {
			base = rawServer(t, src.raw)
		}
		// The sled asks the source before it accepts the copy: a source
		// that fails that HEAD is refused at once with 502; one that
		// passes it fails the job.
		if err := d.sled.CopyFromDepot(ctx, dg, nil, base); err != nil {
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != 502 || (ae.Code != api.CodeSourceUnavailable && ae.Code != api.CodeSourceNotFound) {
				t.Fatalf("%s: copy refused with %v; want 202 or 502 SOURCE_*", src.name, err)
			}
			t.Logf("%s: refused: %s", src.name, ae.Code)
		} else {
			job, err := d.sled.Copy(ctx, dg, 20*time.Second)
			if err != nil || job.State != depot.CopyFailed {
				t.Fatalf("%s: job = %+v, %v; want failed", src.name, job, err)
			}
			t.Logf("%s: %s", src.name, job.Error)
		}
		if _, list, _ := d.sled.ListArtifacts(ctx); len(list) != 0 {
			t.Fatalf("%s: stored %v", src.name, list)
		}
	}

	// Refused before any job: URLs with more than scheme://host:port, and
	// hosts outside the allowlist (default: loopback only).
	for _, u := range []string{
		good + "/admin?q=", good + "/x", good + "?q=1", good + "#f",
		strings.Replace(good, "http://", "http://user:pw@", 1),
		"http://10.255.255.1:80", "http://[fd00::1]:12348", "ftp://127.0.0.1:21", "http://127.0.0.1",
	} {
		var ae *client.APIError
		err := d.sled.CopyFromDepot(ctx, dg, nil, u)
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != api.CodeInvalidDepotURL {
			t.Errorf("%s: %v; want 400 INVALID_DEPOT_URL", u, err)
		}
	}
	// The good source still works, so the failures above were the sources'.
	if err := d.sled.CopyFromDepot(ctx, dg, nil, good); err != nil {
		t.Fatal(err)
	}
	if job, err := d.sled.Copy(ctx, dg, 20*time.Second); err != nil || job.State != depot.CopySucceeded {
		t.Fatalf("good source: %+v, %v", job, err)
	}

	// No byte a source sent is in /copies or the log.
	resp, err := http.Get(d.sledURL + "/copies")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for where, text := range map[string]string{"/copies": string(body), "the log": d.log.String()} {
		for _, leak := range []string{secret, "SSH-2.0", "Found", "<a href"} {
			if strings.Contains(text, leak) {
				t.Errorf("%s holds %q", where, leak)
			}
		}
	}
}

// httptestServer serves h on 127.0.0.1 and returns its base URL.
func httptestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// rawServer runs serve on every connection to a 127.0.0.1 port.
func rawServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestTLS_SIGHUPReloads(t *testing.T) {
	certs := rackCerts(t, "server:sled", "next:sled", "coordinator:coordinator")
	served := t.TempDir()
	for _, ext := range []string{".crt", ".key"} {
		copyFile(t, filepath.Join(certs, "server"+ext), filepath.Join(served, "server"+ext))
	}
	d := startDaemon(t, t.TempDir(), "--coordinator=false",
		"--tls-cert", filepath.Join(served, "server.crt"), "--tls-key", filepath.Join(served, "server.key"),
		"--tls-client-ca", filepath.Join(certs, "ca.crt"), "--tls-reload-interval", "1h")
	before := serverSerial(t, d.sledURL, certs)
	for _, ext := range []string{".key", ".crt"} {
		copyFile(t, filepath.Join(certs, "next"+ext), filepath.Join(served, "server"+ext))
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "new connections see the new certificate after SIGHUP", func() bool {
		return serverSerial(t, d.sledURL, certs) != before
	})
	// The log line follows the swap.
	waitUntil(t, 10*time.Second, "the reload logged as SIGHUP", func() bool {
		return strings.Contains(d.log.String(), "why=SIGHUP")
	})
	d.stop(t)
}

func TestTLS_OperatorListenerOwnCertificate(t *testing.T) {
	rack := rackCerts(t, "coordinator:coordinator,sled")
	people := rackCerts(t, "ops:")
	d := startDaemon(t, t.TempDir(), append(tlsFlags(rack, "coordinator"),
		"--operator-tls-cert", filepath.Join(people, "ops.crt"), "--operator-tls-key", filepath.Join(people, "ops.key"))...)
	r, err := transport.NewReloader(transport.Files{CA: filepath.Join(people, "ca.crt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	op := client.New(strings.Replace(d.opURL, "http://", "https://", 1), client.NewHTTPClient(r))
	if _, err := op.Repos(context.Background()); err != nil {
		t.Fatalf("operator API with the people's CA: %v", err)
	}
	// The rack listeners keep the rack certificate.
	if c, err := tls.Dial("tcp", strings.TrimPrefix(d.sledURL, "http://"), r.ClientConfig("127.0.0.1")); err == nil {
		c.Close()
		t.Fatal("the sled listener served a certificate of the people's CA")
	}
	serverSerial(t, d.sledURL, rack) // verifies against the rack CA
	d.stop(t)
}
