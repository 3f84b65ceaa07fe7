package store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"depot/store"
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

// BenchmarkStore_PutLarge measures a 256 MiB durable write on one mirror
// and on two, each mirror in its own folder of DEPOT_BENCH_DIRS (a comma-
// separated pair, such as two tmpfs mounts, so the copies do not share a
// disk); skipped without it. The body comes from a small repeated pattern,
// so the benchmark itself holds no large buffer.
func BenchmarkStore_PutLarge(b *testing.B) {
	dirs := strings.Split(os.Getenv("DEPOT_BENCH_DIRS"), ",")
	if len(dirs) < 2 {
		b.Skip("DEPOT_BENCH_DIRS (two folders on separate file systems) not set")
	}
	const size = 256 << 20
	pattern, _ := blob(1<<20+7, 97) // not a power of two: chunks differ
	h := store.NewHash()
	if _, err := io.Copy(h, patternReader(pattern, size)); err != nil {
		b.Fatal(err)
	}
	var d store.Digest
	h.Sum(d[:0])
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("mirrors=%d", n), func(b *testing.B) {
			var mirrors []string
			for _, dir := range dirs[:n] {
				m, err := os.MkdirTemp(dir, "bench")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(m) })
				mirrors = append(mirrors, m)
			}
			s := openStore(b, mirrors, nil)
			ctx := context.Background()
			b.SetBytes(size)
			for b.Loop() {
				if _, err := s.Put(ctx, d, patternReader(pattern, size), size); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Delete(ctx, d); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// patternReader reads n bytes of p repeated, the way a socket hands them:
// a copy into the reader's buffer.
func patternReader(p []byte, n int64) io.Reader {
	return io.LimitReader(&repeatReader{p: p}, n)
}

type repeatReader struct {
	p   []byte
	off int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], r.p[r.off:])
		n += c
		r.off = (r.off + c) % len(r.p)
	}
	return n, nil
}
