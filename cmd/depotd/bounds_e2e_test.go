package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"depot/server/api"
	"depot/server/client"
	"depot/store"
)

// Bounds of issue "Rack network security I", scaled for the CI suite: the
// full-size run (500 connections, one byte every 10 s, 60 s) is
// scripts/slowloris.

// procStats returns a process's resident set and open descriptors.
func procStats(t testing.TB, pid int) (rssKiB int64, fds int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return rssKiB, len(ents)
}

// slowPut opens a PUT of a 1 MiB body and sends it one byte per interval
// until ctx ends or the server answers; it returns the status the server
// answered with (0: none).
func slowPut(ctx context.Context, addr string, interval time.Duration) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0
	}
	defer c.Close()
	d := strings.Repeat("ab", 32)
	fmt.Fprintf(c, "PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", d, 1<<20)
	status := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case s := <-status:
			return s
		case <-ctx.Done():
			return 0
		case <-t.C:
			if _, err := c.Write([]byte{'x'}); err != nil {
				select {
				case s := <-status:
					return s
				case <-time.After(time.Second):
					return 0
				}
			}
		}
	}
}

func TestBounds_SlowClientsDoNotStarveOthers(t *testing.T) {
	const conns = 100
	d := startDaemon(t, t.TempDir(), "--coordinator=false", "--min-body-rate-window", "2s")
	addr := strings.TrimPrefix(d.sledURL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var cut408, opened atomic.Int64
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				opened.Add(1)
				if slowPut(ctx, addr, 500*time.Millisecond) == http.StatusRequestTimeout {
					cut408.Add(1)
				}
			}
		})
	}
	time.Sleep(time.Second) // the slow connections are in
	data, dg := randomBlob(1<<20, 77)
	var worst time.Duration
	var peakRSS int64
	peakFDs := 0
	for i := 0; ctx.Err() == nil; i++ {
		start := time.Now()
		if _, err := d.sled.PutArtifact(context.Background(), dg, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("normal PUT among slow clients: %v", err)
		}
		rc, _, err := d.depot.GetArtifact(context.Background(), dg)
		if err != nil {
			t.Fatalf("normal GET among slow clients: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GET: %v", err)
		}
		worst = max(worst, time.Since(start))
		rss, fds := procStats(t, d.cmd.Process.Pid)
		peakRSS, peakFDs = max(peakRSS, rss), max(peakFDs, fds)
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	t.Logf("%d slow connections (%d opened, %d cut with 408); slowest normal PUT+GET %v; peak RSS %d MiB, peak fds %d",
		conns, opened.Load(), cut408.Load(), worst, peakRSS>>10, peakFDs)
	if cut408.Load() == 0 {
		t.Error("no slow body was cut with 408")
	}
	if peakFDs > conns+64 {
		t.Errorf("descriptors not bounded: %d open with %d clients", peakFDs, conns)
	}
	if !raceEnabled && peakRSS > 128<<10 {
		t.Errorf("RSS %d MiB, want <= 128 MiB", peakRSS>>10)
	}
}

func TestBounds_MaxConnections(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--coordinator=false", "--max-connections", "10")
	addr := strings.TrimPrefix(d.sledURL, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		// One answered request proves the server accepted (and counts)
		// the connection, which then stays open (keep-alive).
		fmt.Fprintf(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("held connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(extra, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := extra.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection over the cap: read %v, want it closed at once", err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitUntil(t, 10*time.Second, "a request succeeds once the held connections are gone", func() bool {
		_, err := d.sled.Status(context.Background())
		return err == nil
	})
}

func TestBounds_WriteSlotsAndDownloadStall(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--coordinator=false", "--max-concurrent-writes", "2", "--download-stall-timeout", "1s")
	addr := strings.TrimPrefix(d.sledURL, "http://")
	ctx := context.Background()
	// Two writers that sent their first 64 KiB hold both slots. A holder
	// whose request the daemon reaches after the third writer's is itself
	// refused: it is then opened again, until the holders hold.
	hold := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", strings.Repeat("cd", 32), 1<<20)
		c.Write(make([]byte, 64<<10))
		return c
	}
	held := []net.Conn{hold(), hold()}
	data, dg := randomBlob(1<<20, 78)
	var ae *client.APIError
	waitUntil(t, 20*time.Second, "a third writer is refused with 503", func() bool {
		for i, c := range held {
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				c.Close() // answered (refused): hold again
				held[i] = hold()
			}
		}
		_, err := d.sled.PutArtifact(ctx, dg, bytes.NewReader(data), int64(len(data)))
		return errors.As(err, &ae) && ae.Status == 503
	})
	if ae.Code != api.CodeServerBusy || ae.RetryAfter <= 0 {
		t.Fatalf("refusal = %+v, want SERVER_BUSY with Retry-After", ae)
	}
	for _, c := range held {
		c.Close()
	}
	waitUntil(t, 10*time.Second, "a writer succeeds once the slots are free", func() bool {
		_, err := d.sled.PutArtifact(ctx, dg, bytes.NewReader(data), int64(len(data)))
		return err == nil
	})

	// A download whose reader stops is dropped.
	big, bg := randomBlob(64<<20, 79)
	if _, err := d.sled.PutArtifact(ctx, bg, bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(d.depotURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(64 << 10) // keep the kernel from absorbing the download
	}
	fmt.Fprintf(c, "GET /artifact/sha256/%s HTTP/1.1\r\nHost: x\r\n\r\n", store.Digest(bg))
	time.Sleep(4 * time.Second) // the reader stalls
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if n >= int64(len(big)) {
		t.Fatalf("a stalled reader got the whole download (%d bytes, %v)", n, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server kept the stalled download open (%d bytes read)", n)
	}
	t.Logf("stalled reader: connection dropped after %d of %d bytes", n, len(big))
}
