package transport_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"depot/server/transport"
)

// testCA signs leaf certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

var serial int64 = 100

// leaf writes NAME.crt and NAME.key into dir for 127.0.0.1 with roles.
func (ca *testCA) leaf(t testing.TB, dir, name string, roles ...transport.Role) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	for _, r := range roles {
		tmpl.URIs = append(tmpl.URIs, transport.RoleURI(r))
	}
	tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: "spiffe", Host: "rack", Path: "/ignored"})
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	return certFile, keyFile
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// serve runs an mTLS server that answers with the roles of its client.
func serve(t testing.TB, r *transport.Reloader, auth tls.ClientAuthType) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for _, role := range transport.RolesOf(req.TLS) {
			w.Write([]byte(string(role) + ";"))
		}
	})}
	go srv.Serve(tls.NewListener(ln, r.ServerConfig(auth)))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func dial(t testing.TB, addr string, c *transport.Reloader) (*tls.Conn, error) {
	t.Helper()
	return tls.Dial("tcp", addr, c.ClientConfig("127.0.0.1"))
}

func TestReloader_RotatesAndRefusesABadPair(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	write(t, filepath.Join(dir, "ca.crt"), ca.pem)
	cert, key := ca.leaf(t, dir, "server")
	srv, err := transport.NewReloader(transport.Files{Cert: cert, Key: key, ClientCA: filepath.Join(dir, "ca.crt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv, tls.RequireAndVerifyClientCert)
	cc, ck := ca.leaf(t, dir, "client", transport.RoleCoordinator)
	cli, err := transport.NewReloader(transport.Files{CA: filepath.Join(dir, "ca.crt"), ClientCert: cc, ClientKey: ck}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := dial(t, addr, cli)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	serialOf := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	was := serialOf(first)

	if swapped, err := srv.Reload(); swapped || err != nil {
		t.Fatalf("reload of unchanged files: %v, %v", swapped, err)
	}
	// A new certificate with the old key: refused, the old pair serves.
	other := t.TempDir()
	newCert, newKey := ca.leaf(t, other, "server")
	b, _ := os.ReadFile(newCert)
	write(t, cert, b)
	if swapped, err := srv.Reload(); swapped || err == nil {
		t.Fatalf("reload of a mismatched pair: %v, %v", swapped, err)
	}
	if c, err := dial(t, addr, cli); err != nil || serialOf(c) != was {
		t.Fatalf("after a refused reload: %v", err)
	}
	// The matching key too: swapped; new connections see it, the old one
	// still works.
	b, _ = os.ReadFile(newKey)
	write(t, key, b)
	if swapped, err := srv.Reload(); !swapped || err != nil {
		t.Fatalf("reload of a good pair: %v, %v", swapped, err)
	}
	c, err := dial(t, addr, cli)
	if err != nil || serialOf(c) == was {
		t.Fatalf("after rotation: %v", err)
	}
	c.Close()
	if _, err := first.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatalf("old connection: %v", err)
	}
}

func TestReloader_ClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, foreign := newCA(t), newCA(t)
	write(t, filepath.Join(dir, "ca.crt"), ca.pem)
	cert, key := ca.leaf(t, dir, "server")
	srv, err := transport.NewReloader(transport.Files{Cert: cert, Key: key, ClientCA: filepath.Join(dir, "ca.crt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	required := serve(t, srv, tls.RequireAndVerifyClientCert)
	optional := serve(t, srv, tls.VerifyClientCertIfGiven)
	client := func(name string, ca *testCA, roles ...transport.Role) *http.Client {
		files := transport.Files{CA: filepath.Join(dir, "ca.crt")}
		if ca != nil {
			files.ClientCert, files.ClientKey = ca.leaf(t, t.TempDir(), name, roles...)
		}
		r, err := transport.NewReloader(files, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{DialTLSContext: nil, TLSClientConfig: r.ClientConfig("127.0.0.1")}}
	}
	get := func(hc *http.Client, addr string) (string, error) {
		resp, err := hc.Get("https://" + addr)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b := make([]byte, 256)
		n, _ := resp.Body.Read(b)
		return string(b[:n]), nil
	}
	if got, err := get(client("c", ca, transport.RoleCoordinator, transport.RoleSled), required); err != nil || got != "coordinator;sled;" {
		t.Fatalf("roles = %q, %v", got, err)
	}
	if _, err := get(client("", nil), required); err == nil {
		t.Fatal("no certificate was let in")
	}
	if _, err := get(client("x", foreign, transport.RoleCoordinator), required); err == nil {
		t.Fatal("a foreign CA's certificate was let in")
	}
	if got, err := get(client("", nil), optional); err != nil || got != "" {
		t.Fatalf("optional, none: %q, %v", got, err)
	}
	if _, err := get(client("x", foreign, transport.RoleOperator), optional); err == nil {
		t.Fatal("optional: a foreign CA's certificate was accepted")
	}
}

func TestRolesOf_OnlyVerifiedChains(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	certFile, _ := ca.leaf(t, dir, "c", transport.RoleCoordinator)
	b, _ := os.ReadFile(certFile)
	blk, _ := pem.Decode(b)
	cert, _ := x509.ParseCertificate(blk.Bytes)
	unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	if roles := transport.RolesOf(unverified); len(roles) != 0 {
		t.Fatalf("roles from unverified peer certificates: %v", roles)
	}
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert, ca.cert}}}
	if roles := transport.RolesOf(verified); !slices.Equal(roles, []transport.Role{transport.RoleCoordinator}) {
		t.Fatalf("roles = %v", roles)
	}
	if transport.RoleURI(transport.RoleCoordinator).String() != "depot://role/coordinator" {
		t.Fatal(transport.RoleURI(transport.RoleCoordinator))
	}
}

func TestLimitListener_ClosesOverTheCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := transport.LimitListener(ln, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	a, b := <-accepted, <-accepted
	clients[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := clients[2].Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("third connection: %v, want closed", err)
	}
	if l.Open() != 2 || l.Refused() != 1 {
		t.Fatalf("open %d refused %d", l.Open(), l.Refused())
	}
	a.Close()
	a.Close() // twice: counted once
	b.Close()
	if l.Open() != 0 {
		t.Fatalf("open %d after closing", l.Open())
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.8.9.1:1": true, "[::1]:1": true,
		"0.0.0.0:1": false, "[::]:1": false, "10.0.0.5:1": false,
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := transport.IsLoopback(a); got != want {
			t.Errorf("IsLoopback(%s) = %v", addr, got)
		}
	}
}
