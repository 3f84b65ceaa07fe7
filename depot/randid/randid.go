// Package randid makes random identifiers: 128 bits from crypto/rand as 32
// lowercase hex digits, for saga ids and request ids.
package randid

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a fresh identifier. crypto/rand's Read never returns an
// error (it panics instead), so neither does New.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
