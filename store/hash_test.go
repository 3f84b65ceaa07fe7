package store_test

import (
	"crypto/sha256"
	"hash"
	"testing"

	sha256simd "github.com/minio/sha256-simd"

	"depot/store"
)

// BenchmarkHash compares store.NewHash with the two SHA-256
// implementations it could use: crypto/sha256 (standard library, SHA-NI
// where the CPU has it) and github.com/minio/sha256-simd (SHA-NI / AVX-512
// assembly). sha256-simd is imported here only, so the comparison stays
// reproducible; README "Hashing" has the figures and the choice.
//
// size=1GiB hashes one 1 GiB artifact in 1 MiB writes (the store's chunk
// size); size=4KiB hashes a small artifact in one write, new hash and Sum
// included, where set-up cost shows.
func BenchmarkHash(b *testing.B) {
	impls := []struct {
		name string
		new  func() hash.Hash
	}{
		{"store.NewHash", store.NewHash},
		{"crypto-sha256", sha256.New},
		{"minio-sha256-simd", sha256simd.New},
	}
	cases := []struct {
		name   string
		total  int
		writes int
	}{
		{"size=1GiB", 1 << 30, 1 << 20},
		{"size=4KiB", 4 << 10, 4 << 10},
	}
	for _, c := range cases {
		buf := make([]byte, c.writes)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for _, impl := range impls {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(c.total))
				var sum [32]byte
				for b.Loop() {
					h := impl.new()
					for n := 0; n < c.total; n += len(buf) {
						h.Write(buf)
					}
					h.Sum(sum[:0])
				}
			})
		}
	}
}
