// Package authtoken defines operator tokens and roles as both the daemon
// and the CLI see them: a token is "depot_" followed by 43 base64url
// characters (32 random bytes), stored and looked up only as its SHA-256,
// written "sha256:<64 hex>"; roles are ordered viewer < operator < admin.
// It imports only the standard library.
package authtoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// Role is what an identity may do on the operator API. Roles are ordered:
// each may do everything the ones below it may.
type Role int

// Roles, lowest first. None may do nothing.
const (
	None Role = iota
	Viewer
	Operator
	Admin
)

var names = [...]string{None: "none", Viewer: "viewer", Operator: "operator", Admin: "admin"}

func (r Role) String() string {
	if r < None || r > Admin {
		return "none"
	}
	return names[r]
}

// ParseRole parses "viewer", "operator" or "admin".
func ParseRole(s string) (Role, error) {
	for r := Viewer; r <= Admin; r++ {
		if names[r] == s {
			return r, nil
		}
	}
	return None, errors.New("a role must be viewer, operator or admin")
}

// Hash is the SHA-256 of a token.
type Hash [32]byte

// HashSecret returns the hash a token is stored and looked up under.
func HashSecret(secret string) Hash { return sha256.Sum256([]byte(secret)) }

// String returns "sha256:<64 hex>".
func (h Hash) String() string { return "sha256:" + hex.EncodeToString(h[:]) }

// ParseHash parses "sha256:<64 hex>". Its error never quotes s: a token
// pasted where its hash belongs must not reach a log.
func ParseHash(s string) (Hash, error) {
	var h Hash
	hx, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hx) != 64 {
		return h, errors.New("token hash: want sha256:<64 hex digits>")
	}
	if _, err := hex.Decode(h[:], []byte(hx)); err != nil {
		return h, errors.New("token hash: want sha256:<64 hex digits>")
	}
	return h, nil
}

// Prefix starts every token NewSecret makes.
const Prefix = "depot_"

// NewSecret returns a fresh random token.
func NewSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b[:])
}
