package tuf_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// benchSize is the size of the benchmark's one big target: 1 GiB, or
// TUF_BENCH_SIZE bytes.
func benchSize(b *testing.B) int64 {
	if s := os.Getenv("TUF_BENCH_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1 << 30
}

// BenchmarkOpenWalk opens a repository with one large random target from a
// file and streams it through WalkTargets. B/op stays a few MiB whatever the
// size: nothing is held whole.
func BenchmarkOpenWalk(b *testing.B) {
	size := benchSize(b)
	repo := tuftest.NewBuilder(b)
	open, sum := tuftest.RandomTarget(42, size)
	repo.AddTargetReader(tuftest.Targets, "big.bin", size, sum, open)
	repo.SetManifest("1.0.0", []tuftest.Artifact{{Name: "big", Version: "1.0.0", Kind: "blob", Target: "big.bin"}})
	roots := [][]byte{repo.RootJSON()}
	for _, c := range []struct {
		name   string
		format tuftest.Format
		store  bool
	}{
		{"zip-store", tuftest.Zip, true},
		{"zip-deflate", tuftest.Zip, false},
		{"tar", tuftest.Tar, false},
		{"tar.zst", tuftest.TarZst, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "repo."+string(c.format))
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriterSize(f, 1<<20)
			if err := repo.WriteArchive(w, c.format, c.store); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r, err := tuf.Open(context.Background(), f, st.Size(), roots, tuf.Options{})
				if err != nil {
					b.Fatal(err)
				}
				err = r.WalkTargets(context.Background(), func(_ tuf.Target, body io.Reader) error {
					_, err := io.Copy(io.Discard, body)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(st.Size())/float64(size), "archive/target")
			f.Close()
		})
	}
}
