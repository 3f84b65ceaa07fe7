// Command benchload drives a depotd with many small artifacts from
// concurrent clients, for scripts/bench: PUTs to the sled API, then GETs
// from the depot API, reporting ops/s and MB/s of each. It can also write
// the same artifacts as plain files (-dump) so the script can time the
// baseline (sha256sum + cp + sync) on the same bytes.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"depot/server/api"
	"depot/server/client"
)

func main() {
	sledURL := flag.String("sled", "http://127.0.0.1:12345", "sled API URL")
	depotURL := flag.String("depot", "http://127.0.0.1:12348", "depot API URL")
	n := flag.Int("n", 10000, "number of artifacts")
	size := flag.Int("size", 4096, "bytes per artifact")
	conc := flag.Int("c", 16, "concurrent clients")
	dump := flag.String("dump", "", "write the artifacts as files into this folder and exit")
	flag.Parse()

	blobs := make([][]byte, *n)
	r := rand.NewChaCha8([32]byte{42})
	for i := range blobs {
		blobs[i] = make([]byte, *size)
		r.Read(blobs[i])
	}
	if *dump != "" {
		for i, b := range blobs {
			if err := os.WriteFile(filepath.Join(*dump, fmt.Sprintf("%06d", i)), b, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		return
	}
	digests := make([]api.Digest, *n)
	for i, b := range blobs {
		digests[i] = sha256.Sum256(b)
	}
	hc := client.DefaultHTTPClient()
	sled, dep := client.New(*sledURL, hc), client.New(*depotURL, hc)
	ctx := context.Background()

	run := func(name string, op func(i int) error) {
		var next atomic.Int64
		var failed atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		start := time.Now()
		for range *conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= *n {
						return
					}
					if err := op(i); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start).Seconds()
		fmt.Printf("%s: %d x %d B, %d clients: %.2f s, %.0f ops/s, %.1f MB/s, %d failed\n",
			name, *n, *size, *conc, el, float64(*n)/el, float64(*n)*float64(*size)/el/1e6, failed.Load())
		if e := firstErr.Load(); e != nil {
			fmt.Fprintln(os.Stderr, "first error:", e)
			os.Exit(1)
		}
	}
	run("put", func(i int) error {
		_, err := sled.PutArtifact(ctx, digests[i], bytes.NewReader(blobs[i]), int64(len(blobs[i])))
		return err
	})
	run("get", func(i int) error {
		body, _, err := dep.GetArtifact(ctx, digests[i])
		if err != nil {
			return err
		}
		defer body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, body); err != nil {
			return err
		}
		if api.Digest(h.Sum(nil)) != digests[i] {
			return fmt.Errorf("artifact %d: wrong bytes", i)
		}
		return nil
	})
}
