package tuftest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// KeyType is a signing key algorithm.
type KeyType string

// Key types go-tuf verifies.
const (
	ED25519 KeyType = "ed25519"
	ECDSA   KeyType = "ecdsa" // P-256, ecdsa-sha2-nistp256
)

// Key is a signing key and its TUF public form.
type Key struct {
	Signer signature.Signer
	Public *metadata.Key
	ID     string
}

// NewKey generates a key.
func NewKey(kt KeyType) (*Key, error) {
	var (
		priv crypto.PrivateKey
		pub  crypto.PublicKey
		h    crypto.Hash
	)
	switch kt {
	case ED25519, "":
		p, s, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		priv, pub = s, p
	case ECDSA:
		s, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		priv, pub, h = s, s.Public(), crypto.SHA256
	default:
		return nil, fmt.Errorf("tuftest: unknown key type %q", kt)
	}
	signer, err := signature.LoadSigner(priv, h)
	if err != nil {
		return nil, err
	}
	public, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, err
	}
	id, err := public.ID()
	if err != nil {
		return nil, err
	}
	return &Key{Signer: signer, Public: public, ID: id}, nil
}

// GenerateKey generates a key, failing t on error.
func GenerateKey(t testing.TB, kt KeyType) *Key {
	t.Helper()
	k, err := NewKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
