package api

import "depot/store/digest"

// Digest is the SHA-256 of an artifact, as it travels on the wire: 64 hex
// digits in paths and JSON (strings and map keys), sent in lower case and
// accepted in either case. It is the store's type (package digest, which
// imports only the standard library).
type Digest = digest.Digest

// ParseDigest parses 64 hex digits in either case; anything else is an
// error.
func ParseDigest(s string) (Digest, error) { return digest.Parse(s) }
