// Command mkcerts makes a rack's certificates with crypto/x509: a rack CA
// (made once, on first use, in the output folder) and certificates signed
// by it, each with the DNS names and IP addresses it is reached by and the
// roles it holds (URI SANs depot://role/NAME). Every certificate is valid
// for both server and client authentication, so a sled's one certificate
// serves its listeners and identifies it on its outbound calls.
//
//	go run ./scripts/mkcerts -dir certs -name coordinator -role coordinator -role operator -san 127.0.0.1 -san localhost
//	go run ./scripts/mkcerts -dir certs -name sled0 -role sled -san sled0.rack.example -san 10.0.0.5
//
// writes certs/ca.crt and certs/ca.key (if absent), certs/NAME.crt and
// certs/NAME.key. Keys are ECDSA P-256, written 0600. -expired makes a
// certificate whose validity ended yesterday (for tests).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mkcerts: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkcerts", flag.ContinueOnError)
	dir := fs.String("dir", "certs", "output `folder`; holds the rack CA (ca.crt, ca.key), made on first use")
	name := fs.String("name", "", "certificate `name`: writes NAME.crt and NAME.key (empty: only make the CA)")
	var roles, sans listFlag
	fs.Var(&roles, "role", "`role` written as the URI SAN depot://role/ROLE (coordinator, sled, operator), repeatable")
	fs.Var(&sans, "san", "DNS name or IP address the holder is reached by, repeatable")
	days := fs.Int("days", 365, "validity in days")
	caDays := fs.Int("ca-days", 3650, "validity of a new CA in days")
	expired := fs.Bool("expired", false, "make a certificate that expired yesterday (for tests)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	ca, caKey, err := loadOrMakeCA(*dir, *caDays)
	if err != nil {
		return err
	}
	if *name == "" {
		return nil
	}
	if strings.ContainsAny(*name, `/\`) || *name == "ca" {
		return fmt.Errorf("-name %q: want a plain name other than ca", *name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: *name, Organization: []string{"depot rack"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Duration(*days) * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if *expired {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	for _, r := range roles {
		if r == "" || strings.ContainsAny(r, "/?# ") {
			return fmt.Errorf("-role %q: want a plain name", r)
		}
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: "depot", Host: "role", Path: "/" + r})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writePair(*dir, *name, der, key); err != nil {
		return err
	}
	fmt.Printf("%s: %s.crt, %s.key (roles %v, SANs %v, until %s)\n", *dir, *name, *name, []string(roles), []string(sans), tmpl.NotAfter.Format(time.DateOnly))
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func loadOrMakeCA(dir string, days int) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if errors.Is(err, fs.ErrNotExist) {
		return makeCA(dir, days)
	}
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, nil, fmt.Errorf("ca.crt exists but its key does not: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("ca.crt or ca.key is not PEM")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("ca.key: %w", err)
	}
	return ca, key, nil
}

func makeCA(dir string, days int) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "depot rack CA", Organization: []string{"depot rack"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(dir, "ca", der, key); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	fmt.Printf("%s: new rack CA ca.crt, ca.key\n", dir)
	return ca, key, err
}

// writePair writes NAME.crt and NAME.key, each through a temp file and a
// rename, so a daemon reloading them never reads half a file.
func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// The key first: a reload that sees a new certificate with the old
	// key refuses the pair and keeps serving the previous one.
	if err := writeAtomic(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
