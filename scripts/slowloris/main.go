// Command slowloris holds many slow connections against a depotd and
// measures whether it stays usable: N clients each open a PUT of a 1 MiB
// body, send its headers and then one byte every -interval, and reconnect
// whenever the daemon cuts them; meanwhile another client does a normal
// PUT and GET every second. It starts the daemon itself (storage-only, on
// loopback, in a temporary data folder) so it can sample its RSS and open
// descriptors from /proc, and prints the figures.
//
//	go build -o /tmp/depotd ./cmd/depotd
//	go run ./scripts/slowloris -depotd /tmp/depotd                 # 500 clients, 1 byte / 10 s, 60 s
//	go run ./scripts/slowloris -depotd /tmp/depotd -n 100 -for 10s # smaller
//
// Extra depotd flags follow "--". The exit status is 1 when a normal
// request failed or took longer than -max-latency, or RSS went over
// -max-rss.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "slowloris: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("depotd", "", "depotd `binary` to start (required)")
	n := flag.Int("n", 500, "slow connections held at once")
	interval := flag.Duration("interval", 10*time.Second, "time between the bytes of a slow body")
	dur := flag.Duration("for", 60*time.Second, "how long to hold them")
	maxLatency := flag.Duration("max-latency", time.Second, "a normal PUT or GET slower than this fails the run")
	maxRSS := flag.Int64("max-rss", 128, "RSS in MiB above which the run fails")
	flag.Parse()
	if *bin == "" {
		return fmt.Errorf("-depotd is required (go build -o /tmp/depotd ./cmd/depotd)")
	}
	dir, err := os.MkdirTemp("", "slowloris-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf, err := os.Create(filepath.Join(dir, "depotd.log"))
	if err != nil {
		return err
	}
	args := append([]string{"--coordinator=false", "--data", filepath.Join(dir, "data"),
		"--listen", "127.0.0.1:0", "--depot-listen", "127.0.0.1:0"}, flag.Args()...)
	cmd := exec.Command(*bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	sled, depot, err := waitListening(logf.Name())
	if err != nil {
		return err
	}
	pid := cmd.Process.Pid
	fmt.Printf("depotd pid %d: sled %s, depot %s; %d slow clients, 1 byte every %s, for %s\n", pid, sled, depot, *n, *interval, *dur)

	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var wg sync.WaitGroup
	var opened, cut, refused atomic.Int64
	statuses := sync.Map{}
	for i := range *n {
		wg.Go(func() {
			// Spread the starts over a second.
			time.Sleep(time.Duration(i) * time.Second / time.Duration(*n))
			for ctx.Err() == nil {
				opened.Add(1)
				st, err := slowPut(ctx, sled, *interval)
				switch {
				case err != nil:
					refused.Add(1)
					time.Sleep(100 * time.Millisecond)
				case st != 0:
					cut.Add(1)
					v, _ := statuses.LoadOrStore(st, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
				}
			}
		})
	}

	data := make([]byte, 1<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	hexd := hex.EncodeToString(sum[:])
	hc := &http.Client{Timeout: 30 * time.Second}
	var worstPut, worstGet time.Duration
	var peakRSS int64
	peakFDs, rounds, failures := 0, 0, 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		rounds++
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPut, "http://"+sled+"/artifacts/"+hexd, bytes.NewReader(data))
		resp, err := hc.Do(req)
		put := time.Since(start)
		if err != nil || resp.StatusCode != 200 {
			failures++
			fmt.Printf("  normal PUT failed: %v %v\n", err, status(resp))
		}
		if resp != nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		start = time.Now()
		resp, err = hc.Get("http://" + depot + "/artifact/sha256/" + hexd)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		get := time.Since(start)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, data) {
			failures++
			fmt.Printf("  normal GET failed: %v %v\n", err, status(resp))
		}
		worstPut, worstGet = max(worstPut, put), max(worstGet, get)
		rss, fds := procStats(pid)
		peakRSS, peakFDs = max(peakRSS, rss), max(peakFDs, fds)
		if rounds%10 == 0 {
			fmt.Printf("  t=%3ds  slow opened %d, answered %d; PUT %v GET %v; RSS %d MiB, fds %d\n",
				rounds, opened.Load(), cut.Load(), put.Round(time.Millisecond), get.Round(time.Millisecond), rss>>10, fds)
		}
	}
	cancel()
	wg.Wait()
	var answers []string
	statuses.Range(func(k, v any) bool {
		answers = append(answers, fmt.Sprintf("%d x %d", v.(*atomic.Int64).Load(), k))
		return true
	})
	fmt.Printf("result: %d slow clients for %s: %d connections opened, answered %s, %d refused at connect\n",
		*n, *dur, opened.Load(), strings.Join(answers, ", "), refused.Load())
	fmt.Printf("result: %d normal PUT+GET rounds, %d failures; slowest PUT %v, slowest GET %v\n",
		rounds, failures, worstPut.Round(time.Millisecond), worstGet.Round(time.Millisecond))
	fmt.Printf("result: depotd peak RSS %d MiB, peak open descriptors %d\n", peakRSS>>10, peakFDs)
	if failures > 0 || worstPut > *maxLatency || worstGet > *maxLatency || peakRSS>>10 > *maxRSS {
		return fmt.Errorf("bounds not met (max latency %v, max RSS %d MiB)", *maxLatency, *maxRSS)
	}
	return nil
}

func status(r *http.Response) string {
	if r == nil {
		return ""
	}
	return r.Status
}

// slowPut opens a PUT with a 1 MiB body and sends one byte per interval
// until the daemon answers (its status) or ctx ends (0).
func slowPut(ctx context.Context, addr string, interval time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", strings.Repeat("ef", 32), 1<<20)
	answered := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- -1 // closed without an answer
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case s := <-answered:
			return s, nil
		case <-ctx.Done():
			return 0, nil
		case <-t.C:
			c.Write([]byte{'x'})
		}
	}
}

var listening = regexp.MustCompile(`msg=listening sled=(\S+) depot=(\S+)`)

func waitListening(logFile string) (string, string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logFile)
		if m := listening.FindSubmatch(b); m != nil {
			return string(m[1]), string(m[2]), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(logFile)
	return "", "", fmt.Errorf("depotd did not listen within 30s:\n%s", b)
}

// procStats returns a process's RSS in KiB and its open descriptors.
func procStats(pid int) (int64, int) {
	var rss int64
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				rss, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			}
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rss, len(ents)
}
