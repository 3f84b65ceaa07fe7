// Package digest is the SHA-256 name of an artifact: one [32]byte type
// with its hex form, shared by the store and the wire types of server/api
// (so the CLI, which links server/api, links no storage code). It imports
// only the standard library.
package digest

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Digest is the SHA-256 of an artifact's bytes. Hex strings are parsed into
// a Digest once, at the boundary, and never travel further.
type Digest [32]byte

// ErrInvalid is wrapped by Parse's errors: the text is not 64 hex digits.
var ErrInvalid = errors.New("invalid sha256 digest")

// Parse parses 64 hex digits in either case (omicron's ArtifactHash accepts
// both); the Digest prints in lower case. Anything else (wrong length,
// other characters) returns an error wrapping ErrInvalid.
func Parse(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("%w: %q is %d characters, want 64 hex digits", ErrInvalid, truncate(s), len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return d, fmt.Errorf("%w: %q has %q at offset %d, want 64 hex digits", ErrInvalid, truncate(s), c, i)
		}
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return d, nil
}

// String returns the 64 lowercase hex digits, the form used on disk, in
// URLs and in JSON.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler (JSON strings and map keys).
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with Parse's rules.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// truncate keeps an error message about a long input short.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
