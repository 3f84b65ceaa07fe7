// Command benchstartup measures depotd's start-up with many artifacts:
// the time from exec until GET /status answers, warm and with the page
// cache dropped (as root, through /proc/sys/vm/drop_caches), beside
// `ls -R` of the same tree measured the same way in the same run.
//
//	go run ./scripts/benchstartup [-n 100000] [-runs 5] [-dir /tmp]
//
// The tree (two mirrors, n artifacts of 512 bytes each, with their index)
// is made once under -dir and reused by later runs with the same n.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

func main() {
	n := flag.Int("n", 100_000, "artifacts")
	runs := flag.Int("runs", 5, "runs of each measure (the median is printed)")
	dir := flag.String("dir", os.TempDir(), "where the tree is made")
	depotd := flag.String("depotd", "", "depotd binary (default: built from this tree)")
	flag.Parse()
	if err := run(*n, *runs, *dir, *depotd); err != nil {
		fmt.Fprintln(os.Stderr, "benchstartup:", err)
		os.Exit(1)
	}
}

func run(n, runs int, dir, depotd string) error {
	data := filepath.Join(dir, fmt.Sprintf("depot-startup-%d", n))
	if err := makeTree(data, n); err != nil {
		return err
	}
	if depotd == "" {
		depotd = filepath.Join(dir, "depotd-startup-bench")
		build := exec.Command("go", "build", "-o", depotd, "./cmd/depotd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build depotd: %w", err)
		}
	}
	canDrop := os.Geteuid() == 0
	fmt.Printf("start-up with %d artifacts on 2 mirrors (%s), %d runs each, medians (min-max)\n", n, data, runs)
	for _, cold := range []bool{false, true} {
		if cold && !canDrop {
			fmt.Println("cold: skipped (dropping the page cache needs root)")
			continue
		}
		var ds, ls []time.Duration
		for range runs {
			// Interleaved: depotd, then ls -R, each after its own drop.
			if cold {
				dropCaches()
			}
			d, err := startOnce(depotd, data)
			if err != nil {
				return err
			}
			ds = append(ds, d)
			if cold {
				dropCaches()
			}
			start := time.Now()
			ls1 := exec.Command("ls", "-R", data)
			if err := ls1.Run(); err != nil {
				return fmt.Errorf("ls -R: %w", err)
			}
			ls = append(ls, time.Since(start))
		}
		label := "warm"
		if cold {
			label = "cold"
		}
		fmt.Printf("%s: depotd %s, ls -R %s, ratio %.2f\n", label, stats(ds), stats(ls), float64(median(ds))/float64(median(ls)))
	}
	return nil
}

func dropCaches() {
	syscall.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func stats(d []time.Duration) string {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%s (%s-%s)", s[len(s)/2].Round(time.Millisecond), s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startOnce starts depotd on the tree and returns the time until /status
// answers 200; then stops it.
func startOnce(bin, data string) (time.Duration, error) {
	addr := freeAddr()
	cmd := exec.Command(bin, "--data", data, "--listen", addr, "--depot-listen", freeAddr(), "--coordinator=false")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Since(start) < 2*time.Minute {
		if resp, err := c.Get("http://" + addr + "/status"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("depotd did not answer /status within 2 minutes")
}

// makeTree writes n artifacts of 512 bytes into <data>/m2a and <data>/m2b
// in the store's layout, with their index entries, unless a finished tree
// is already there.
func makeTree(data string, n int) error {
	done := filepath.Join(data, ".complete")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	start := time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 512)
	now := time.Now()
	rec := make([]byte, 24)
	binary.BigEndian.PutUint64(rec[0:], uint64(len(body)))
	binary.BigEndian.PutUint64(rec[8:], uint64(now.UnixNano()))
	binary.BigEndian.PutUint64(rec[16:], uint64(now.UnixNano()))
	var dbs []*bolt.DB
	var txs []*bolt.Tx
	for _, m := range []string{"m2a", "m2b"} {
		for _, sub := range []string{"tmp", "meta", "artifacts"} {
			if err := os.MkdirAll(filepath.Join(data, m, sub), 0o755); err != nil {
				return err
			}
		}
		for i := range 256 {
			if err := os.MkdirAll(filepath.Join(data, m, "artifacts", fmt.Sprintf("%02x", i)), 0o755); err != nil {
				return err
			}
		}
		db, err := bolt.Open(filepath.Join(data, m, "index.db"), 0o600, nil)
		if err != nil {
			return err
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	begin := func() error {
		txs = txs[:0]
		for _, db := range dbs {
			tx, err := db.Begin(true)
			if err != nil {
				return err
			}
			if _, err := tx.CreateBucketIfNotExists([]byte("artifacts")); err != nil {
				return err
			}
			txs = append(txs, tx)
		}
		return nil
	}
	commit := func() error {
		for _, tx := range txs {
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := begin(); err != nil {
		return err
	}
	for i := range n {
		for j := range body {
			body[j] = byte(r.Uint32())
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])
		for k, m := range []string{"m2a", "m2b"} {
			if err := os.WriteFile(filepath.Join(data, m, "artifacts", h[:2], h), body, 0o644); err != nil {
				return err
			}
			if err := txs[k].Bucket([]byte("artifacts")).Put(sum[:], rec); err != nil {
				return err
			}
		}
		if i%10_000 == 9_999 {
			if err := commit(); err != nil {
				return err
			}
			if err := begin(); err != nil {
				return err
			}
		}
	}
	if err := commit(); err != nil {
		return err
	}
	syscall.Sync()
	fmt.Printf("made %d artifacts x 2 mirrors in %s\n", n, time.Since(start).Round(time.Second))
	return os.WriteFile(done, nil, 0o644)
}
