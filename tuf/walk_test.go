package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/iotest"

	"depot/tuf"
	"depot/tuf/tuftest"
)

func TestWalkTargets_ArchiveOrder(t *testing.T) {
	b := tuftest.NewBuilder(t)
	names := []string{"c.bin", "a.bin", "b/z.bin", "b/a.bin"}
	for _, n := range names {
		b.AddTarget(n, []byte(n))
	}
	for _, f := range tuftest.Formats {
		repo := mustOpen(t, b, f, tuf.Options{})
		var got []string
		err := repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
			got = append(got, tg.Path)
			return iotest.TestReader(body, []byte(tg.Path))
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range names {
			if got[i] != names[i] {
				t.Fatalf("%s: walked %v, want archive order %v", f, got, names)
			}
		}
	}
}

func TestWalkTargets_OneByteReads(t *testing.T) {
	b := newRepo(t)
	for _, f := range tuftest.Formats {
		repo := mustOpen(t, b, f, tuf.Options{})
		err := repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
			data, err := io.ReadAll(iotest.OneByteReader(body))
			if int64(len(data)) != tg.Length {
				t.Errorf("%s: read %d bytes of %d", tg.Path, len(data), tg.Length)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestWalkTargets_FnErrorStops(t *testing.T) {
	b := newRepo(t)
	stop := errors.New("stop")
	for _, f := range tuftest.Formats {
		repo := mustOpen(t, b, f, tuf.Options{})
		calls := 0
		err := repo.WalkTargets(context.Background(), func(tuf.Target, io.Reader) error {
			calls++
			return stop
		})
		if err != stop || calls != 1 {
			t.Fatalf("%s: got %v after %d calls, want fn's error after 1", f, err, calls)
		}
	}
}

func TestWalkTargets_UnreadBodyStillVerified(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(editFile("host.img", func(d []byte) []byte { d[len(d)-1] ^= 1; return d }))
	for _, f := range tuftest.Formats {
		repo := mustOpen(t, b, f, tuf.Options{})
		err := repo.WalkTargets(context.Background(), func(_ tuf.Target, body io.Reader) error {
			_, err := body.Read(make([]byte, 3)) // a peek, then nothing
			return err
		})
		wantCheck(t, err, tuf.CheckHash, "targets")
	}
}

func TestWalkTargets_MismatchAtEOFNotBefore(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(editFile("host.img", func(d []byte) []byte { d[0] ^= 1; return d }))
	repo := mustOpen(t, b, tuftest.Zip, tuf.Options{})
	err := repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
		data, err := io.ReadAll(body)
		if tg.Path == "images/host.img" && int64(len(data)) != tg.Length {
			t.Errorf("got %d bytes before the verdict, want all %d", len(data), tg.Length)
		}
		return err
	})
	wantCheck(t, err, tuf.CheckHash, "targets")
}

func TestWalkTargets_Concurrent(t *testing.T) {
	b := newRepo(t)
	for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarGz} {
		repo := mustOpen(t, b, f, tuf.Options{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := walkErr(repo); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
}

func TestWalkTargets_Cancelled(t *testing.T) {
	b := newRepo(t)
	for _, f := range tuftest.Formats {
		repo := mustOpen(t, b, f, tuf.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		err := repo.WalkTargets(ctx, func(_ tuf.Target, body io.Reader) error {
			cancel()
			_, err := io.Copy(io.Discard, body)
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: got %v, want context.Canceled", f, err)
		}
	}
}

func TestOpen_Cancelled(t *testing.T) {
	b := newRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range tuftest.Formats {
		data := b.Archive(f)
		_, err := tuf.Open(ctx, bytes.NewReader(data), int64(len(data)), [][]byte{b.RootJSON()}, tuf.Options{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: got %v, want context.Canceled", f, err)
		}
	}
}

func TestWalkTargets_LargeStreamedTarget(t *testing.T) {
	// A target the builder streams and WalkTargets streams back.
	const size = 8 << 20
	b := tuftest.NewBuilder(t)
	openFn, sum := tuftest.RandomTarget(1, size)
	b.AddTargetReader(tuftest.Targets, "big.bin", size, sum, openFn)
	for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarZst} {
		var buf bytes.Buffer
		if err := b.WriteArchive(&buf, f, true); err != nil {
			t.Fatal(err)
		}
		repo, err := open(t, buf.Bytes(), [][]byte{b.RootJSON()}, tuf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := walkErr(repo); err != nil {
			t.Fatal(err)
		}
	}
}
