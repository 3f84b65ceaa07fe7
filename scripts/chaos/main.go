// Command chaos runs depotd through an operator's worst week on loopback:
// SIGKILL during concurrent writes, repository uploads, copies between two
// daemons and config changes, a mirror removed and re-created under
// load, a corrupted index, a mirror that fills up or turns read-only
// (long mode, as root), and mixed load. Every scenario is bounded in
// rounds and time and talks only to 127.0.0.1. It prints its figures and a
// final "N passed, M failed" line, and exits non-zero on any failure.
//
//	go run ./scripts/chaos -short   # CI: ~1 minute
//	go run ./scripts/chaos          # people: 100 rounds of each kill loop, 64 clients for 60 s
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	short      bool
	rounds     int
	opRounds   int // kill rounds during uploads, copies and config changes
	writers    int
	maxSize    int
	clients    int
	loadFor    time.Duration
	work       string
	depotd     string
	seed       uint64
	rootFaults bool
	only       string
}

func main() {
	var c config
	flag.BoolVar(&c.short, "short", false, "CI mode: 10 write-kill rounds, 3 upload/copy/config kill rounds, 4 MiB artifacts, 16 clients for 8 s")
	flag.StringVar(&c.work, "dir", "", "work folder (default: a new temp folder, removed at the end)")
	flag.StringVar(&c.depotd, "depotd", "", "depotd binary (default: built from this tree)")
	flag.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	flag.StringVar(&c.only, "only", "", "run only the scenario of this name")
	flag.Parse()
	c.rounds, c.writers, c.maxSize, c.clients, c.loadFor = 100, 8, 16<<20, 64, 60*time.Second
	c.opRounds = 100
	if c.short {
		c.rounds, c.maxSize, c.clients, c.loadFor = 10, 4<<20, 16, 8*time.Second
		c.opRounds = 3
	}
	c.rootFaults = !c.short && os.Geteuid() == 0
	os.Exit(run(c))
}

type outcome struct {
	name   string
	err    error
	detail string
}

func run(c config) int {
	if c.work == "" {
		dir, err := os.MkdirTemp("", "depot-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer os.RemoveAll(dir)
		c.work = dir
	}
	if c.depotd == "" {
		c.depotd = filepath.Join(c.work, "depotd")
		build := exec.Command("go", "build", "-o", c.depotd, "./cmd/depotd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build depotd:", err)
			return 2
		}
	}
	fmt.Printf("chaos: seed %d, work %s, short=%v\n", c.seed, c.work, c.short)
	scenarios := []struct {
		name string
		fn   func(config) (string, error)
	}{
		{"sigkill-during-writes", killLoop},
		{"sigkill-during-uploads", killUploads},
		{"sigkill-during-copies", killCopies},
		{"sigkill-during-config-changes", killConfigs},
		{"mirror-removed-and-recreated", mirrorRemoved},
		{"index-corrupted", indexCorrupted},
		{"mirror-full-and-read-only", mirrorFullReadOnly},
		{"mixed-load", mixedLoad},
	}
	var results []outcome
	for _, s := range scenarios {
		if c.only != "" && s.name != c.only {
			continue
		}
		start := time.Now()
		detail, err := s.fn(c)
		results = append(results, outcome{s.name, err, detail})
		state := "PASS"
		if err != nil {
			state = "FAIL"
		}
		fmt.Printf("%s %s (%s): %s", state, s.name, time.Since(start).Round(time.Millisecond), detail)
		if err != nil {
			fmt.Printf(" -- %v", err)
		}
		fmt.Println()
	}
	passed, failed := 0, 0
	for _, r := range results {
		if r.err != nil {
			failed++
		} else {
			passed++
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// daemon is one depotd on loopback.
type daemon struct {
	bin, data string
	addr      string
	depotAddr string // fixed across restarts, so a peer's URL stays valid
	opAddr    string // operator API, for a coordinator (coord)
	coord     bool
	args      []string
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd has exited
	logf      *os.File
}

func freeAddr() string {
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		addr := l.Addr().String()
		l.Close()
		// The kernel may hand a port it just freed out again: never give
		// the same one to two listeners (a daemon's own three, or two
		// daemons), or one of them fails to start.
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// handedOut is every address freeAddr returned in this run.
var handedOut = struct {
	mu    sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

func newDaemon(c config, name string, args ...string) *daemon {
	data := filepath.Join(c.work, name)
	return &daemon{bin: c.depotd, data: data, addr: freeAddr(), depotAddr: freeAddr(), args: args}
}

// newCoordinator is a daemon that runs the coordinator, with its operator
// API on its own loopback listener.
func newCoordinator(c config, name string, args ...string) *daemon {
	d := newDaemon(c, name, args...)
	d.coord, d.opAddr = true, freeAddr()
	return d
}

func (d *daemon) depotURL() string { return "http://" + d.depotAddr }
func (d *daemon) opURL() string    { return "http://" + d.opAddr }

func (d *daemon) url(p string) string { return "http://" + d.addr + p }

func (d *daemon) mirror(i int) string { return filepath.Join(d.data, []string{"m2a", "m2b"}[i]) }

func (d *daemon) start() error {
	if err := os.MkdirAll(d.data, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(d.data, "depotd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"--data", d.data, "--listen", d.addr, "--depot-listen", d.depotAddr}
	if d.coord {
		args = append(args, "--operator-listen", d.opAddr)
	} else {
		args = append(args, "--coordinator=false")
	}
	args = append(args, d.args...)
	d.cmd = exec.Command(d.bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.logf = logf
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(d.cmd, d.exited)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(d.url("/status")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-d.exited:
			name := d.logf.Name()
			d.kill()
			return fmt.Errorf("depotd exited at start-up (log: %s): %s", name, lastLine(name))
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.kill()
	return fmt.Errorf("depotd did not answer /status within 60 s (log: %s)", d.logf.Name())
}

func (d *daemon) kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
	}
	if d.logf != nil {
		d.logf.Close()
	}
	d.cmd = nil
}

func (d *daemon) stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.exited
		}
	}
	if d.logf != nil {
		d.logf.Close()
	}
	d.cmd = nil
}

// peakRSS is the daemon's peak resident set (VmHWM) in bytes.
func (d *daemon) peakRSS() int64 {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

var httpc = &http.Client{Timeout: 60 * time.Second}

type ack struct {
	digest string
	size   int
	copies int
}

func body(r *rand.Rand, n int) ([]byte, string) {
	b := make([]byte, n)
	var seed [32]byte
	binary64(seed[:], r.Uint64())
	cc := rand.NewChaCha8(seed)
	cc.Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func binary64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// put sends one artifact; the status code, copies and error.
func put(ctx context.Context, d *daemon, data []byte, digest string) (int, int, error) {
	req, _ := http.NewRequestWithContext(ctx, "PUT", d.url("/artifacts/"+digest), bytes.NewReader(data))
	req.ContentLength = int64(len(data))
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var res struct {
		SuccessfulWrites int `json:"successful_writes"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &res); err != nil {
			return resp.StatusCode, 0, err
		}
	}
	return resp.StatusCode, res.SuccessfulWrites, nil
}

type status struct {
	Mirrors []struct {
		Path      string `json:"path"`
		Healthy   bool   `json:"healthy"`
		Artifacts int    `json:"artifacts"`
		LastError string `json:"last_error"`
	} `json:"mirrors"`
	Scrub struct {
		Running bool `json:"running"`
	} `json:"scrub"`
}

func getStatus(d *daemon) (status, error) {
	var st status
	resp, err := httpc.Get(d.url("/status"))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func list(d *daemon) (map[string]int, error) {
	resp, err := httpc.Get(d.url("/artifacts"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var l struct {
		List map[string]int `json:"list"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, err
	}
	return l.List, nil
}

// filesOn lists the artifact files of a mirror by name.
func filesOn(mirror string) map[string]bool {
	out := map[string]bool{}
	fans, _ := os.ReadDir(filepath.Join(mirror, "artifacts"))
	for _, f := range fans {
		names, _ := os.ReadDir(filepath.Join(mirror, "artifacts", f.Name()))
		for _, n := range names {
			out[n.Name()] = true
		}
	}
	return out
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func artifactPath(mirror, digest string) string {
	return filepath.Join(mirror, "artifacts", digest[:2], digest)
}

// checkConsistent: no temp files; the list is exactly the files on the
// mirrors, with as many copies as mirrors hold the file.
func checkConsistent(d *daemon) error {
	for i := range 2 {
		if tmp, _ := os.ReadDir(filepath.Join(d.mirror(i), "tmp")); len(tmp) != 0 {
			return fmt.Errorf("%d temp files left in %s", len(tmp), d.mirror(i))
		}
	}
	l, err := list(d)
	if err != nil {
		return err
	}
	a, b := filesOn(d.mirror(0)), filesOn(d.mirror(1))
	files := map[string]int{}
	for n := range a {
		files[n]++
	}
	for n := range b {
		files[n]++
	}
	if len(files) != len(l) {
		return fmt.Errorf("list has %d artifacts, the mirrors hold %d", len(l), len(files))
	}
	for n, c := range files {
		if l[n] != c {
			return fmt.Errorf("%s listed with %d copies, %d mirrors hold it", n, l[n], c)
		}
	}
	return nil
}

// checkAcked: every acknowledged artifact is on every mirror it was
// reported on, byte for byte.
func checkAcked(d *daemon, acks []ack) (lost, corrupt int) {
	for _, a := range acks {
		present := 0
		for i := range 2 {
			got, err := hashFile(artifactPath(d.mirror(i), a.digest))
			if err != nil {
				continue
			}
			if got != a.digest {
				corrupt++
				continue
			}
			present++
		}
		if present < a.copies {
			lost++
		}
	}
	return lost, corrupt
}

func killLoop(c config) (string, error) {
	d := newDaemon(c, "kill")
	r := rand.New(rand.NewPCG(c.seed, 1))
	var total, lost, corrupt, failedReq int
	for round := range c.rounds {
		if err := d.start(); err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
		if err := checkConsistent(d); err != nil {
			d.kill()
			return "", fmt.Errorf("round %d, after restart: %w", round, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var acks []ack
		var wg sync.WaitGroup
		for w := range c.writers {
			wr := rand.New(rand.NewPCG(c.seed, uint64(round*1000+w)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					n := 1<<10 + wr.IntN(c.maxSize-1<<10)
					data, digest := body(wr, n)
					code, copies, err := put(ctx, d, data, digest)
					if err == nil && code == 200 {
						mu.Lock()
						acks = append(acks, ack{digest, n, copies})
						mu.Unlock()
					} else if err == nil {
						mu.Lock()
						failedReq++
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(100+r.IntN(900)) * time.Millisecond)
		d.kill()
		cancel()
		wg.Wait()
		if err := d.start(); err != nil {
			return "", fmt.Errorf("round %d restart: %w", round, err)
		}
		l, cr := checkAcked(d, acks)
		lost, corrupt, total = lost+l, corrupt+cr, total+len(acks)
		err := checkConsistent(d)
		d.stop()
		if err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
	}
	detail := fmt.Sprintf("%d rounds x %d writers, %d acknowledged, %d lost, %d corrupt, %d refused (non-200)",
		c.rounds, c.writers, total, lost, corrupt, failedReq)
	if lost > 0 || corrupt > 0 || failedReq > 0 {
		return detail, errors.New("acknowledged artifacts lost or corrupt, or writes refused")
	}
	return detail, nil
}

// load runs n writers of small artifacts until stop is closed; it returns
// the acknowledged ones and the non-200 answers by status.
func load(d *daemon, n int, seed uint64, stop <-chan struct{}) func() ([]ack, map[int]int) {
	var mu sync.Mutex
	var acks []ack
	bad := map[int]int{}
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, digest := body(r, 1<<10+r.IntN(256<<10))
				code, copies, err := put(context.Background(), d, data, digest)
				mu.Lock()
				if err == nil && code == 200 {
					acks = append(acks, ack{digest, len(data), copies})
				} else {
					bad[code]++
				}
				mu.Unlock()
			}
		}()
	}
	return func() ([]ack, map[int]int) {
		wg.Wait()
		return acks, bad
	}
}

func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// refilled waits until both mirrors are healthy and hold the same number
// of artifacts, with no scrub running.
func refilled(d *daemon, limit time.Duration) error {
	var last status
	if waitUntil(limit, func() bool {
		st, err := getStatus(d)
		last = st
		return err == nil && len(st.Mirrors) == 2 && st.Mirrors[0].Healthy && st.Mirrors[1].Healthy &&
			st.Mirrors[0].Artifacts == st.Mirrors[1].Artifacts && !st.Scrub.Running
	}) {
		return nil
	}
	return fmt.Errorf("mirrors not healthy and refilled within %s: %+v", limit, last.Mirrors)
}

func mirrorRemoved(c config) (string, error) {
	d := newDaemon(c, "removed")
	if err := d.start(); err != nil {
		return "", err
	}
	defer d.stop()
	stop := make(chan struct{})
	wait := load(d, 4, c.seed+2, stop)
	time.Sleep(500 * time.Millisecond)
	// Writes in flight may make a fan-out folder while it is removed.
	var rmErr error
	for range 20 {
		if rmErr = os.RemoveAll(d.mirror(1)); rmErr == nil {
			break
		}
	}
	if rmErr != nil {
		close(stop)
		wait()
		return "", rmErr
	}
	sick := waitUntil(15*time.Second, func() bool {
		st, err := getStatus(d)
		return err == nil && !st.Mirrors[1].Healthy && st.Mirrors[1].LastError != ""
	})
	time.Sleep(500 * time.Millisecond)
	// The operator brings the folder back and marks it as a mirror.
	if err := os.MkdirAll(filepath.Join(d.mirror(1), "meta"), 0o755); err != nil {
		close(stop)
		wait()
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d.mirror(1), "meta", ".depot-mirror"), nil, 0o644); err != nil {
		close(stop)
		wait()
		return "", err
	}
	time.Sleep(time.Second)
	close(stop)
	acks, bad := wait()
	detail := fmt.Sprintf("%d acknowledged under load, non-200 %v", len(acks), bad)
	if !sick {
		return detail, errors.New("/status never showed the removed mirror unhealthy with a reason")
	}
	if len(bad) > 0 {
		return detail, errors.New("writes failed while the other mirror was healthy")
	}
	if err := refilled(d, 40*time.Second); err != nil {
		return detail, err
	}
	lost, corrupt := checkAcked(d, acks)
	for i := range acks {
		acks[i].copies = 2 // refilled: every one on both
	}
	lost2, corrupt2 := checkAcked(d, acks)
	detail += fmt.Sprintf(", lost %d, corrupt %d, not on both mirrors after refill %d", lost, corrupt+corrupt2, lost2)
	if lost+corrupt+lost2+corrupt2 > 0 {
		return detail, errors.New("artifacts lost, corrupt or not refilled")
	}
	return detail, checkConsistent(d)
}

func indexCorrupted(c config) (string, error) {
	d := newDaemon(c, "index")
	if err := d.start(); err != nil {
		return "", err
	}
	stop := make(chan struct{})
	wait := load(d, 4, c.seed+3, stop)
	time.Sleep(time.Second)
	close(stop)
	acks, bad := wait()
	d.stop()
	f, err := os.OpenFile(filepath.Join(d.mirror(1), "index.db"), os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	junk := make([]byte, 8<<10)
	rand.NewChaCha8([32]byte{1}).Read(junk)
	f.WriteAt(junk, 0)
	f.Close()
	if err := d.start(); err != nil {
		return "", fmt.Errorf("start with a corrupt index: %w", err)
	}
	defer d.stop()
	stop = make(chan struct{})
	wait = load(d, 4, c.seed+4, stop)
	time.Sleep(time.Second)
	close(stop)
	acks2, bad2 := wait()
	for k, v := range bad2 {
		bad[k] += v
	}
	detail := fmt.Sprintf("%d acknowledged before, %d after the corruption, non-200 %v", len(acks), len(acks2), bad)
	if len(bad) > 0 {
		return detail, errors.New("writes failed")
	}
	if err := refilled(d, 60*time.Second); err != nil {
		return detail, err
	}
	for i := range acks {
		acks[i].copies = 2
	}
	for i := range acks2 {
		acks2[i].copies = 2
	}
	lost, corrupt := checkAcked(d, append(acks, acks2...))
	if aside, _ := filepath.Glob(filepath.Join(d.mirror(1), "index.db.corrupt-*")); len(aside) != 1 {
		return detail, fmt.Errorf("corrupt index kept as %v, want one file", aside)
	}
	detail += fmt.Sprintf(", after rebuild and refill: lost %d, corrupt %d", lost, corrupt)
	if lost+corrupt > 0 {
		return detail, errors.New("artifacts lost or corrupt")
	}
	return detail, checkConsistent(d)
}

// mirrorFullReadOnly puts m2b on a small tmpfs, fills it, then remounts it
// read-only, under load. Needs root; skipped (passed, said so) otherwise
// and in short mode.
func mirrorFullReadOnly(c config) (string, error) {
	if !c.rootFaults {
		return "skipped (needs root, long mode)", nil
	}
	d := newDaemon(c, "tmpfs")
	if err := os.MkdirAll(d.mirror(1), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "depot-chaos", d.mirror(1)).CombinedOutput(); err != nil {
		return "skipped (mount tmpfs: " + strings.TrimSpace(string(out)) + ")", nil
	}
	defer exec.Command("umount", "-l", d.mirror(1)).Run()
	if err := d.start(); err != nil {
		return "", err
	}
	defer d.stop()
	stop := make(chan struct{})
	wait := load(d, 4, c.seed+5, stop)
	full := waitUntil(60*time.Second, func() bool {
		st, err := getStatus(d)
		return err == nil && !st.Mirrors[1].Healthy && strings.Contains(st.Mirrors[1].LastError, "no space")
	})
	time.Sleep(time.Second)
	close(stop)
	acks, bad := wait()
	detail := fmt.Sprintf("full: %d acknowledged, non-200 %v", len(acks), bad)
	if !full {
		return detail, errors.New("/status never showed the full mirror unhealthy for lack of space")
	}
	if len(bad) > 0 {
		return detail, errors.New("writes failed while the other mirror had room")
	}
	// Room again, then read-only under load.
	for _, a := range acks {
		os.Remove(artifactPath(d.mirror(1), a.digest))
	}
	// Linux refuses remount,ro while a file on the mount is open for
	// writing (depotd holds the index): then the daemon is stopped, the
	// mount turned read-only, and the daemon started on it.
	if out, err := exec.Command("mount", "-o", "remount,ro", d.mirror(1)).CombinedOutput(); err != nil {
		d.stop()
		if out2, err := exec.Command("mount", "-o", "remount,ro", d.mirror(1)).CombinedOutput(); err != nil {
			return detail, fmt.Errorf("remount ro: %s; with depotd stopped: %s", strings.TrimSpace(string(out)), strings.TrimSpace(string(out2)))
		}
		if err := d.start(); err != nil {
			return detail, fmt.Errorf("start on a read-only mirror: %w", err)
		}
		detail += "; read-only remount needed depotd stopped (EBUSY under load), restarted on it"
	}
	stop = make(chan struct{})
	wait = load(d, 4, c.seed+6, stop)
	time.Sleep(2 * time.Second)
	close(stop)
	acks2, bad2 := wait()
	st, _ := getStatus(d)
	detail += fmt.Sprintf("; read-only: %d acknowledged, non-200 %v, m2b: %q", len(acks2), bad2, st.Mirrors[1].LastError)
	if len(bad2) > 0 || st.Mirrors[1].Healthy {
		return detail, errors.New("writes failed, or the read-only mirror is reported healthy")
	}
	// m2b's copies were removed above to make room: m2a must hold each.
	all := append(acks, acks2...)
	for i := range all {
		all[i].copies = 1
	}
	lost, corrupt := checkAcked(d, all)
	if lost+corrupt > 0 {
		return detail, fmt.Errorf("lost %d, corrupt %d", lost, corrupt)
	}
	return detail, nil
}

func mixedLoad(c config) (string, error) {
	d := newDaemon(c, "mixed")
	if err := d.start(); err != nil {
		return "", err
	}
	defer d.stop()
	type owned struct {
		digest string
		data   []byte
	}
	var mu sync.Mutex
	var lat []time.Duration
	unexpected := map[string]int{}
	ops := 0
	keep := map[string][]byte{}
	deleted := map[string]bool{}
	end := time.Now().Add(c.loadFor)
	var wg sync.WaitGroup
	for cl := range c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(c.seed+7, uint64(cl)))
			var mine []owned
			note := func(what string, start time.Time, ok bool) {
				mu.Lock()
				lat = append(lat, time.Since(start))
				ops++
				if !ok {
					unexpected[what]++
				}
				mu.Unlock()
			}
			for time.Now().Before(end) {
				p := r.IntN(100)
				start := time.Now()
				switch {
				case p < 30 || len(mine) == 0:
					data, digest := body(r, 1<<10+r.IntN(64<<10))
					code, _, err := put(context.Background(), d, data, digest)
					ok := err == nil && code == 200
					note(fmt.Sprintf("PUT %d %v", code, err), start, ok)
					if ok {
						mine = append(mine, owned{digest, data})
					}
				case p < 60:
					o := mine[r.IntN(len(mine))]
					resp, err := httpc.Get(d.url("/artifacts/" + o.digest))
					ok := false
					code := 0
					if err == nil {
						b, rerr := io.ReadAll(resp.Body)
						resp.Body.Close()
						code = resp.StatusCode
						ok = rerr == nil && code == 200 && bytes.Equal(b, o.data)
					}
					note(fmt.Sprintf("GET %d", code), start, ok)
				case p < 75:
					o := mine[r.IntN(len(mine))]
					req, _ := http.NewRequest("HEAD", d.url("/artifacts/"+o.digest), nil)
					resp, err := httpc.Do(req)
					ok := err == nil && resp.StatusCode == 200 && resp.ContentLength == int64(len(o.data))
					code := 0
					if err == nil {
						resp.Body.Close()
						code = resp.StatusCode
					}
					note(fmt.Sprintf("HEAD %d", code), start, ok)
				case p < 80:
					_, err := list(d)
					note("LIST", start, err == nil)
				default:
					i := r.IntN(len(mine))
					o := mine[i]
					req, _ := http.NewRequest("DELETE", d.url("/artifacts/"+o.digest), nil)
					resp, err := httpc.Do(req)
					code := 0
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						code = resp.StatusCode
					}
					ok := err == nil && code/100 == 2
					note(fmt.Sprintf("DELETE %d", code), start, ok)
					if ok {
						mine = append(mine[:i], mine[i+1:]...)
						mu.Lock()
						deleted[o.digest] = true
						mu.Unlock()
					}
				}
			}
			mu.Lock()
			for _, o := range mine {
				keep[o.digest] = o.data
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	rss := d.peakRSS()
	// Everything that should exist reads back; what was deleted (and not
	// put again by another client) is gone.
	missing := 0
	for digest, data := range keep {
		resp, err := httpc.Get(d.url("/artifacts/" + digest))
		if err != nil {
			missing++
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(b, data) {
			missing++
		}
	}
	back := 0
	for digest := range deleted {
		if _, ok := keep[digest]; ok {
			continue
		}
		req, _ := http.NewRequest("HEAD", d.url("/artifacts/"+digest), nil)
		if resp, err := httpc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				back++
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(float64(len(lat)-1)*p)]
	}
	nerr := 0
	for _, v := range unexpected {
		nerr += v
	}
	detail := fmt.Sprintf("%d clients for %s: %d ops, %d unexpected %v, p50 %s, p99 %s, peak RSS %.1f MiB; %d kept read back (%d missing), %d deleted came back",
		c.clients, c.loadFor, ops, nerr, unexpected, pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond),
		float64(rss)/(1<<20), len(keep), missing, back)
	if nerr > 0 || missing > 0 || back > 0 {
		return detail, errors.New("unexpected errors, missing artifacts or deletes undone")
	}
	return detail, checkConsistent(d)
}

// lastLine is the last line of a log file, for an error that the work
// folder's removal would otherwise take with it.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
