// Command benchload drives a depotd with many small artifacts from
// concurrent clients, for scripts/bench: PUTs to the sled API, then GETs
// from the depot API, reporting ops/s and MB/s of each. It can also write
// the same artifacts as plain files (-dump) so the script can time the
// baseline (sha256sum + cp + sync) on the same bytes. With -registry it
// drives a distribution registry's blob API with the same workload instead.
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
	"strings"
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
	layout := flag.String("mirror-layout", "", "write the artifacts into this mirror folder's layout (artifacts/xx/<sha256>) and exit")
	reg := flag.String("registry", "", "drive this distribution registry (its blob API) instead of depotd")
	ops := flag.String("ops", "put,get", "what to run: put, get or put,get")
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
	if *layout != "" {
		// What a mirror holds without its index: depotd adopts the files
		// at start-up.
		for i, b := range blobs {
			h := digests[i].String()
			dir := filepath.Join(*layout, "artifacts", h[:2])
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := os.WriteFile(filepath.Join(dir, h), b, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		return
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
	var put, get func(i int) error
	if *reg != "" {
		r := registry{base: *reg, name: "bench", hc: hc}
		put = func(i int) error { return r.put(ctx, digests[i], blobs[i]) }
		get = func(i int) error { return r.get(ctx, digests[i]) }
	} else {
		put = func(i int) error {
			_, err := sled.PutArtifact(ctx, digests[i], bytes.NewReader(blobs[i]), int64(len(blobs[i])))
			return err
		}
		get = func(i int) error {
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
		}
	}
	for _, op := range strings.Split(*ops, ",") {
		switch op {
		case "put":
			run("put", put)
		case "get":
			run("get", get)
		default:
			fmt.Fprintf(os.Stderr, "-ops: unknown %q\n", op)
			os.Exit(2)
		}
	}
}
