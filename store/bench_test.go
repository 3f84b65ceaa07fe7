package store_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkStore_Put measures a whole durable write (hash, both mirrors,
// fsync, rename, index) of distinct artifacts; MB/s is of artifact bytes.
func BenchmarkStore_Put(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s, _ := testStore(b, nil)
			data, _ := blob(size, 99)
			b.SetBytes(int64(size))
			var seq atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				buf := bytes.Clone(data)
				for pb.Next() {
					// A different artifact each time: vary the first bytes.
					n := seq.Add(1)
					copy(buf, fmt.Sprintf("%016x", n))
					d := digestOf(buf)
					if _, err := s.Put(context.Background(), d, bytes.NewReader(buf), int64(len(buf))); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkStore_Open measures opening a stored artifact for reading.
func BenchmarkStore_Open(b *testing.B) {
	s, _ := testStore(b, nil)
	data, d := blob(4<<10, 98)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), -1); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bl, err := s.Open(context.Background(), d)
			if err != nil {
				b.Fatal(err)
			}
			bl.File.Close()
		}
	})
}
