package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"depot/depot"
	"depot/server"
	"depot/server/api"
)

// testCA signs leaf certificates for TestAuth_ClientCertificateRole.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test rack CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) leaf(t *testing.T, cn string, client bool, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	for _, s := range uris {
		u, _ := url.Parse(s)
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestAuth_ClientCertificateRole: over real mTLS, a client certificate
// with a depot://role/operator URI SAN may do what an operator token may,
// no more, and is the actor of its audit records; a certificate without a
// role, or none, is not an identity.
func TestAuth_ClientCertificateRole(t *testing.T) {
	e := newEnv(t, withCoordinator())
	// A token in the catalog: not dev mode.
	if _, _, err := e.coord.Catalog().CreateToken(t.Context(), "someone", depot.RoleAdmin, nil, nil); err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Sled: e.svc, Coordinator: e.coord, Replicator: e.rep, OperatorAddr: "127.0.0.1:0"})
	ca := newTestCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	ts := httptest.NewUnstartedServer(srv.OperatorHandler())
	ts.TLS = &tls.Config{
		MinVersion: tls.VersionTLS13, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven,
		Certificates: []tls.Certificate{ca.leaf(t, "127.0.0.1", false)},
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)

	clientWith := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}
	call := func(hc *http.Client, method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ops := clientWith(ca.leaf(t, "ops-bot", true, "depot://role/operator"))
	if r := call(ops, "PUT", "/v1/sleds/c1", `{"control_url":"http://127.0.0.1:1"}`); r.StatusCode != 200 {
		t.Fatalf("operator certificate puts a sled: %d", r.StatusCode)
	}
	if r := call(ops, "DELETE", "/v1/sleds/c1", ""); r.StatusCode != 403 || r.Header.Get(api.ErrorCodeHeader) != api.CodeForbidden {
		t.Fatalf("operator certificate expunges: %d", r.StatusCode)
	}
	if r := call(clientWith(ca.leaf(t, "sled7", true, "depot://role/coordinator")), "GET", "/v1/sleds", ""); r.StatusCode != 401 {
		t.Fatalf("a certificate without an operator role: %d", r.StatusCode)
	}
	if r := call(clientWith(), "GET", "/v1/sleds", ""); r.StatusCode != 401 {
		t.Fatalf("no certificate: %d", r.StatusCode)
	}
	recs := auditSince(t, e.coord.Catalog(), 0)
	if len(recs) < 2 || recs[0].Actor != "cert:ops-bot" || recs[0].Action != "sled.put" ||
		recs[1].Actor != "cert:ops-bot" || recs[1].Outcome.Status != 403 {
		t.Fatalf("audit: %+v", recs)
	}
}
