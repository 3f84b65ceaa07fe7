package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
)

// Digest is the SHA-256 of an artifact's bytes. Hex strings are parsed into a
// Digest once, at the boundary, and never travel further.
type Digest [32]byte

// ParseDigest parses 64 hex digits in either case (omicron's ArtifactHash
// accepts both); the Digest prints in lower case. Anything else (wrong
// length, other characters) returns an error wrapping ErrInvalidDigest.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("%w: %q is %d characters, want 64 hex digits", ErrInvalidDigest, truncate(s), len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return d, fmt.Errorf("%w: %q has %q at offset %d, want 64 hex digits", ErrInvalidDigest, truncate(s), c, i)
		}
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("%w: %v", ErrInvalidDigest, err)
	}
	return d, nil
}

// String returns the 64 lowercase hex digits, the form used on disk and in URLs.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler (JSON strings and map keys).
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

// NewHash returns the hash every artifact is checked with. It is the one
// place that chooses an implementation: crypto/sha256, which uses SHA-NI
// where the CPU has it. BenchmarkHash (hash_test.go) measures it beside
// minio/sha256-simd, which did not beat it (README, "Hashing"), so
// sha256-simd is imported by that benchmark only.
func NewHash() hash.Hash { return sha256.New() }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
