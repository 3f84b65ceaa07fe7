package store_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"depot/store"
)

// crashRounds: a few in every `go test`; the long mode is
// go test ./store -run TestCrash_SIGKILL -crash.rounds=50
var crashRounds = flag.Int("crash.rounds", 3, "rounds of TestCrash_SIGKILL")

const crashEnv = "DEPOT_STORE_CRASH_MIRRORS"

// TestCrash_SIGKILL kills a process writing small artifacts from 16
// goroutines with SIGKILL, at a random moment, again and again on the same
// two mirrors. Every write the process saw acknowledged (Put returned with
// SuccessfulWrites = n) must be, after the kill, a complete file and an index
// record on at least n mirrors, and the store must open again.
//
// SIGKILL keeps the page cache, so this proves that nothing is acknowledged
// before it is renamed into place and indexed (the group commit answers
// only after its batch); that each step reached the disk is what the fsyncs
// in publish and commitBatch are for.
func TestCrash_SIGKILL(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("runs in the parent")
	}
	dir := t.TempDir()
	mirrors := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	total := 0
	for round := range *crashRounds {
		acked := crashRound(t, mirrors, round)
		total += len(acked)
		var dbs []*bolt.DB
		for _, m := range mirrors {
			db, err := bolt.Open(filepath.Join(m, "index.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("open index of %s: %v", m, err)
			}
			dbs = append(dbs, db)
		}
		for d, n := range acked {
			held := 0
			for i, m := range mirrors {
				if holds(m, dbs[i], d) {
					held++
				}
			}
			if held < n {
				t.Fatalf("round %d: %s was acknowledged on %d mirrors, %d hold it after SIGKILL", round, d, n, held)
			}
		}
		for _, db := range dbs {
			db.Close()
		}
		// The store opens again after every crash (temp files cleared,
		// index reconciled) and serves what was acknowledged.
		s, err := store.Open(context.Background(), store.Options{Mirrors: mirrors, Logger: discardLogger()})
		if err != nil {
			t.Fatalf("round %d: open after SIGKILL: %v", round, err)
		}
		for d, n := range acked {
			if info, err := s.Stat(context.Background(), d); err != nil || info.Copies < n {
				t.Fatalf("round %d: after reopen %s: %+v, %v (acknowledged on %d)", round, d, info, err, n)
			}
		}
		s.Close()
	}
	t.Logf("%d rounds, %d acknowledged writes checked", *crashRounds, total)
}

// crashRound runs the writer process until it has acknowledged a random
// number of writes, kills it, and returns what it acknowledged.
func crashRound(t *testing.T, mirrors []string, round int) map[store.Digest]int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash_Writer$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+strings.Join(mirrors, ","))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	_, _ = rand.Read(b[:])
	killAfter := 1 + int(b[0]) // acknowledged writes before the kill
	acked := make(map[store.Digest]int)
	sc := bufio.NewScanner(out)
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	deadline := time.AfterFunc(2*time.Minute, kill) // a writer that hangs
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		hex, n, ok := strings.Cut(line, " ")
		if !ok {
			continue // torn by the kill
		}
		d, err := store.ParseDigest(hex)
		copies, cerr := strconv.Atoi(n)
		if err != nil || cerr != nil {
			continue
		}
		acked[d] = copies
		if len(acked) >= killAfter {
			kill()
		}
	}
	kill()
	_ = cmd.Wait()
	if len(acked) == 0 {
		t.Fatalf("round %d: the writer acknowledged nothing", round)
	}
	return acked
}

// holds reports whether mirror root has d as a complete file with a record
// in its index db. The index is read directly, before any start-up could
// adopt a file that was not indexed.
func holds(root string, db *bolt.DB, d store.Digest) bool {
	h := d.String()
	data, err := os.ReadFile(filepath.Join(root, "artifacts", h[:2], h))
	if err != nil || sha256.Sum256(data) != d {
		return false
	}
	found := false
	_ = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("artifacts")); b != nil {
			found = b.Get(d[:]) != nil
		}
		return nil
	})
	return found
}

// TestCrash_Writer is the process TestCrash_SIGKILL kills: 16 goroutines
// putting 4 KiB artifacts, each acknowledged write printed as
// "<sha256> <successful writes>" once Put has returned.
func TestCrash_Writer(t *testing.T) {
	roots := os.Getenv(crashEnv)
	if roots == "" {
		t.Skip("runs only as TestCrash_SIGKILL's child")
	}
	s, err := store.Open(context.Background(), store.Options{Mirrors: strings.Split(roots, ","), Logger: discardLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer: open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, 4096)
			for i := 0; i < 100000; i++ {
				_, _ = rand.Read(body)
				d := store.Digest(sha256.Sum256(body))
				res, err := s.Put(context.Background(), d, strings.NewReader(string(body)), int64(len(body)))
				if err != nil {
					fmt.Fprintln(os.Stderr, "writer: put:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%s %d\n", d, res.SuccessfulWrites)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
