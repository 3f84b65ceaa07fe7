package store_test

import (
	"crypto/sha256"
	"hash"
	"testing"

	"depot/store"
)

// BenchmarkHash measures NewHash on 1 MiB writes (the store's chunk size)
// beside crypto/sha256. minio/sha256-simd was measured here too and did not
// win (README, "Hashing"), so it is not a dependency.
func BenchmarkHash(b *testing.B) {
	buf := make([]byte, 1<<20)
	for _, c := range []struct {
		name string
		new  func() hash.Hash
	}{
		{"store.NewHash", store.NewHash},
		{"crypto-sha256", sha256.New},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := c.new()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				h.Write(buf)
			}
		})
	}
}
