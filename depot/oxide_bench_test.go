package depot_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"depot/store"
	"depot/tuf/tuftest"
)

// BenchmarkUpload_HostComposite uploads (spool, verify, stage into two
// mirrors, record) a repository whose one target is a host composite with
// a large random phase 2 image, split at upload, beside the same bytes as
// a plain (non-Oxide) artifact stored whole. DEPOT_SPLIT_BENCH_SIZE sets the
// image size (default 256 MiB). Each iteration uploads into a fresh
// coordinator.
func BenchmarkUpload_HostComposite(b *testing.B) {
	size := int64(256 << 20)
	if s := os.Getenv("DEPOT_SPLIT_BENCH_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	dir := b.TempDir()
	open, _ := tuftest.RandomTarget(9, size)
	comp := filepath.Join(dir, "host.tar.gz")
	f, err := os.Create(comp)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := tuftest.WriteArchive(w, tuftest.TarGz, []tuftest.Entry{
		{Name: "oxide.json", Data: tuftest.OxideJSON("os")},
		{Name: "image/gimlet.rom", Data: bytes.Repeat([]byte("g"), 1<<20)},
		{Name: "image/cosmo.rom", Data: bytes.Repeat([]byte("c"), 1<<20)},
		{Name: "image/zfs.img", Open: open, Size: size},
	}, false); err != nil {
		b.Fatal(err)
	}
	w.Flush()
	f.Close()
	fi, _ := os.Stat(comp)
	h := sha256.New()
	cf, _ := os.Open(comp)
	io.Copy(h, cf)
	cf.Close()
	var sum [32]byte
	h.Sum(sum[:0])
	openComp := func() io.Reader {
		f, err := os.Open(comp)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	for _, c := range []struct{ name, kind string }{{"split", "host"}, {"plain", "blob"}} {
		bl := tuftest.NewBuilder(b)
		bl.AddTargetReader(tuftest.Targets, "host.tar.gz", fi.Size(), sum, openComp)
		bl.SetManifest("1.0.0", []tuftest.Artifact{{Name: "host", Version: "1.0.0", Kind: c.kind, Target: "host.tar.gz"}})
		repo := filepath.Join(dir, c.name+".zip")
		rf, _ := os.Create(repo)
		rw := bufio.NewWriterSize(rf, 1<<20)
		if err := bl.WriteArchive(rw, tuftest.Zip, true); err != nil {
			b.Fatal(err)
		}
		rw.Flush()
		rf.Close()
		ri, _ := os.Stat(repo)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(ri.Size())
			for b.Loop() {
				b.StopTimer()
				e := newOxideEnv(b, false)
				e.trust(b, bl.RootJSON())
				rf, _ := os.Open(repo)
				b.StartTimer()
				res, err := e.coord.Upload(context.Background(), "repo.zip", "", rf, ri.Size(), nil)
				b.StopTimer()
				rf.Close()
				if err != nil {
					b.Fatal(err)
				}
				var stored int64
				for _, a := range res.Repo.Artifacts {
					stored += a.Size
				}
				b.ReportMetric(float64(stored), "stored-bytes")
				_ = store.Digest{}
				b.StartTimer()
			}
		})
	}
}
