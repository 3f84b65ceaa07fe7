package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/url"
	"testing"
	"time"

	"depot/depot"
)

func certWith(t *testing.T, cn string, uris ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertIdentity: only a verified chain counts, the role comes from a
// depot://role/<role> URI SAN (the highest of several), and anything else
// is no identity.
func TestCertIdentity(t *testing.T) {
	op := certWith(t, "ops-bot", "depot://role/operator", "spiffe://rack/x")
	both := certWith(t, "lead", "depot://role/viewer", "depot://role/admin")
	none := certWith(t, "sled7", "depot://role/coordinator", "https://role/admin")
	cases := []struct {
		name  string
		state *tls.ConnectionState
		actor string
		role  depot.Role
	}{
		{"no TLS", nil, "", depot.RoleNone},
		{"unverified peer", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{op}}, "", depot.RoleNone},
		{"verified operator", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{op}}}, "cert:ops-bot", depot.RoleOperator},
		{"highest role", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{both}}}, "cert:lead", depot.RoleAdmin},
		{"no operator role", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{none}}}, "", depot.RoleNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, ok := certIdentity(&http.Request{TLS: c.state})
			if ok != (c.role != depot.RoleNone) || id.actor != c.actor || id.role != c.role {
				t.Fatalf("certIdentity = %+v, %v", id, ok)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:12346": true, "127.0.0.2:1": true, "[::1]:1": true, "localhost:1": true,
		":12346": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "[::]:1": false, "example.com:1": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}
