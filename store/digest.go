package store

import (
	"crypto/sha256"
	"hash"

	"depot/store/digest"
)

// Digest is the SHA-256 of an artifact's bytes (see package digest, which
// server/api shares).
type Digest = digest.Digest

// ParseDigest parses 64 hex digits in either case; anything else returns
// an error wrapping ErrInvalidDigest.
func ParseDigest(s string) (Digest, error) { return digest.Parse(s) }

// NewHash returns the hash every artifact is checked with. It is the one
// place that chooses an implementation: crypto/sha256, which uses SHA-NI
// where the CPU has it. BenchmarkHash (hash_test.go) measures it beside
// minio/sha256-simd, which did not beat it (README, "Hashing"), so
// sha256-simd is imported by that benchmark only.
func NewHash() hash.Hash { return sha256.New() }
