package tuftest

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
)

// RandomReader returns n pseudo-random bytes determined by seed, generated
// as they are read (ChaCha8, several GB/s), so any size costs no memory.
func RandomReader(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// RandomTarget returns an opener for RandomReader(seed, n) and the sha256
// of its bytes (computed by reading them once), ready for AddTargetReader.
func RandomTarget(seed uint64, n int64) (open func() io.Reader, sum [32]byte) {
	h := sha256.New()
	if _, err := io.Copy(h, RandomReader(seed, n)); err != nil {
		panic(err) // ChaCha8 does not fail
	}
	h.Sum(sum[:0])
	return func() io.Reader { return RandomReader(seed, n) }, sum
}
