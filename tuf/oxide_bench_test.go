package tuf_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// splitBenchSize is the size of the big part: 256 MiB, or
// TUF_SPLIT_BENCH_SIZE bytes.
func splitBenchSize(b *testing.B) int64 {
	if s := os.Getenv("TUF_SPLIT_BENCH_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 256 << 20
}

// BenchmarkSplitComposite splits a host composite with a large random
// phase 2 image, and a control plane with one large zone (read twice at
// once: streamed, and scanned for its oxide.json), each beside a baseline
// that only gunzips and untars the same file. Parts go to io.Discard.
func BenchmarkSplitComposite(b *testing.B) {
	size := splitBenchSize(b)
	dir := b.TempDir()
	write := func(name string, entries []tuftest.Entry) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		if err := tuftest.WriteArchive(w, tuftest.TarGz, entries, false); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		return path
	}
	open, _ := tuftest.RandomTarget(7, size)
	host := write("host.tar.gz", []tuftest.Entry{
		{Name: "oxide.json", Data: tuftest.OxideJSON("os")},
		{Name: "image/gimlet.rom", Data: bytes.Repeat([]byte("g"), 1<<20)},
		{Name: "image/cosmo.rom", Data: bytes.Repeat([]byte("c"), 1<<20)},
		{Name: "image/zfs.img", Open: open, Size: size},
	})
	// A zone tarball of size random bytes, itself gzipped, in a control plane.
	zonePath := write("zone.tar.gz", []tuftest.Entry{
		{Name: "oxide.json", Data: []byte(`{"v":"1","t":"layer","pkg":"big","version":"1.0.0"}`)},
		{Name: "root/blob", Open: open, Size: size},
	})
	zi, err := os.Stat(zonePath)
	if err != nil {
		b.Fatal(err)
	}
	cp := write("cp.tar.gz", []tuftest.Entry{
		{Name: "oxide.json", Data: tuftest.OxideJSON("control_plane")},
		{Name: "zones/big.tar.gz", Size: zi.Size(), Open: func() io.Reader {
			f, err := os.Open(zonePath)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}},
	})
	for _, c := range []struct{ name, kind, path string }{
		{"host", tuf.KindHost, host},
		{"control_plane", tuf.KindControlPlane, cp},
	} {
		fi, _ := os.Stat(c.path)
		b.Run(c.name+"/baseline-untar", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				f, _ := os.Open(c.path)
				zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
				if err != nil {
					b.Fatal(err)
				}
				tr := tar.NewReader(zr)
				for {
					_, err := tr.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, tr)
				}
				f.Close()
			}
		})
		b.Run(c.name+"/split", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportMetric(float64(fi.Size()), "composite-bytes")
			for b.Loop() {
				f, _ := os.Open(c.path)
				err := tuf.SplitComposite(context.Background(), c.kind, bufio.NewReaderSize(f, 1<<20), tuf.Limits{}, func(pb *tuf.PartBody) error {
					if _, err := io.Copy(io.Discard, pb); err != nil {
						return err
					}
					_, err := pb.Part()
					return err
				})
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
