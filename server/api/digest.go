package api

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Digest is the SHA-256 of an artifact, as it travels on the wire: 64 hex
// digits in paths and JSON (strings and map keys), sent in lower case and
// accepted in either case.
type Digest [32]byte

// errDigest is what a malformed digest wraps.
var errDigest = errors.New("want 64 hex digits")

// ParseDigest parses 64 hex digits in either case; anything else is an
// error.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("sha256 is %d characters: %w", len(s), errDigest)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return d, fmt.Errorf("sha256 has %q at offset %d: %w", c, i, errDigest)
		}
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("sha256: %w (%v)", errDigest, err)
	}
	return d, nil
}

// String returns the 64 lowercase hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDigest's rules.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}
