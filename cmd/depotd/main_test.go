package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"depot/server/api"
	"depot/server/client"
	"depot/server/servertest"
)

// depotdBin is the daemon under test, built once by TestMain.
var depotdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "depotd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	depotdBin = filepath.Join(dir, "depotd")
	args := []string{"build", "-o", depotdBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build depotd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	haStop() // the etcd cluster of the HA tests, if one ran
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running depotd.
type daemon struct {
	cmd               *exec.Cmd
	sledURL, depotURL string
	sled, depot       *client.Client
	// opURL and op reach the operator API (a coordinator only).
	opURL   string
	op      *client.Client
	log     *servertest.Buffer
	exited  chan struct{} // closed when the process is reaped
	exitErr error         // valid once exited is closed
	mirrors []string
}

// listeningLine matches the "listening" line in either --log-format.
var listeningLine = regexp.MustCompile(`msg=listening sled=(\S+) depot=(\S+) operator=(\S+)|"msg":"listening","sled":"([^"]+)","depot":"([^"]+)","operator":"([^"]*)"`)

// startDaemon runs depotd on --data dir with ports chosen by the kernel and
// waits (bounded) for its "listening" line, text or JSON. Cleanup kills it
// if the test did not stop it.
func startDaemon(t testing.TB, dir string, extra ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, dir, nil, extra...)
}

// startDaemonEnv is startDaemon with extra environment variables.
func startDaemonEnv(t testing.TB, dir string, env []string, extra ...string) *daemon {
	t.Helper()
	d := launchEnv(t, dir, env, extra...)
	deadline := time.After(15 * time.Second)
	for {
		if m := listeningLine.FindStringSubmatch(d.log.String()); m != nil {
			sled, depot, op := m[1], m[2], m[3]
			if sled == "" {
				sled, depot, op = m[4], m[5], m[6]
			}
			d.sledURL, d.depotURL, d.opURL = "http://"+sled, "http://"+depot, "http://"+op
			break
		}
		select {
		case <-d.exited:
			t.Fatalf("depotd exited before listening: %v\n%s", d.exitErr, d.log)
		case <-deadline:
			t.Fatalf("depotd did not log its listening line within 15s:\n%s", d.log)
		case <-time.After(10 * time.Millisecond):
		}
	}
	d.sled = client.New(d.sledURL, nil)
	d.depot = client.New(d.depotURL, nil)
	d.op = client.New(d.opURL, nil)
	d.mirrors = []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}
	return d
}

// launch starts depotd without waiting for it to listen.
func launch(t testing.TB, dir string, extra ...string) *daemon {
	t.Helper()
	return launchEnv(t, dir, nil, extra...)
}

// launchEnv is launch with extra environment variables.
func launchEnv(t testing.TB, dir string, env []string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"--data", dir, "--listen", "127.0.0.1:0", "--depot-listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0"}, extra...)
	d := &daemon{cmd: exec.Command(depotdBin, args...), log: &servertest.Buffer{}, exited: make(chan struct{})}
	// A race-enabled daemon exits at once (not after the default 1 s) and
	// fails loudly on the first race.
	d.cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0 halt_on_error=1"), env...)
	d.cmd.Stderr = d.log
	d.cmd.Stdout = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
		if t.Failed() {
			t.Logf("depotd log:\n%s", d.log)
		}
	})
	return d
}

// wait waits (bounded) for the process to exit and returns its exit code.
func (d *daemon) wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-d.exited:
	case <-time.After(within):
		t.Fatalf("depotd still running after %v:\n%s", within, d.log)
	}
	var ee *exec.ExitError
	if errors.As(d.exitErr, &ee) {
		return ee.ExitCode()
	}
	if d.exitErr != nil {
		t.Fatalf("wait: %v", d.exitErr)
	}
	return 0
}

// stop sends SIGTERM and expects a clean exit.
func (d *daemon) stop(t testing.TB) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("depotd exited %d after SIGTERM:\n%s", code, d.log)
	}
}

func (d *daemon) kill(t testing.TB) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.wait(t, 10*time.Second)
}

func TestDepotd_PutGetStop(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	ctx := context.Background()
	b := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(b)
	dg := api.Digest(sha256.Sum256(b))
	res, err := d.sled.PutArtifact(ctx, dg, bytes.NewReader(b), int64(len(b)))
	if err != nil || res.Datasets != 2 || res.SuccessfulWrites != 2 {
		t.Fatalf("put = %+v, %v", res, err)
	}
	rc, n, err := d.depot.GetArtifact(ctx, dg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || n != int64(len(b)) || !bytes.Equal(got, b) {
		t.Fatalf("get: n=%d len=%d err=%v", n, len(got), err)
	}
	gen, list, err := d.sled.ListArtifacts(ctx)
	if err != nil || gen != nil || list[dg] != 2 {
		t.Fatalf("list = %v %v %v", gen, list, err)
	}
	st, err := d.sled.Status(ctx)
	if err != nil || len(st.Mirrors) != 2 || st.Mirrors[0].Path != d.mirrors[0] || st.Version == "" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	d.stop(t)
	if !strings.Contains(d.log.String(), "msg=stopped") {
		t.Errorf("no stopped line in the log:\n%s", d.log)
	}
	// The data survives a restart.
	d = startDaemon(t, dir)
	if _, list, err := d.sled.ListArtifacts(ctx); err != nil || list[dg] != 2 {
		t.Fatalf("list after restart = %v %v", list, err)
	}
	d.stop(t)
}

func TestDepotd_SecondDaemonOnSameData(t *testing.T) {
	dir := t.TempDir()
	first := startDaemon(t, dir)
	second := launch(t, dir)
	if code := second.wait(t, 15*time.Second); code != 1 {
		t.Fatalf("second depotd exited %d, want 1:\n%s", code, second.log)
	}
	if want := "another depotd is using " + dir; !strings.Contains(second.log.String(), want) {
		t.Fatalf("second depotd's output lacks %q:\n%s", want, second.log)
	}
	// The first one is unharmed.
	if _, err := first.sled.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	first.stop(t)
}

func TestDepotd_MirrorCannotBeCreated(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := launch(t, dir, "--mirror", filepath.Join(file, "m2a"))
	if code := d.wait(t, 15*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, d.log)
	}
	if !strings.Contains(d.log.String(), "depotd: open store on "+filepath.Join(file, "m2a")) {
		t.Fatalf("unclear error:\n%s", d.log)
	}
}

func TestDepotd_Help(t *testing.T) {
	cmd := exec.Command(depotdBin, "--help")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, want := range []string{
		"-data", `(default "./depot-data")`, "-mirror", "-listen", `(default "127.0.0.1:12345")`,
		"-depot-listen", `(default "127.0.0.1:12348")`, "-max-artifact-size", "(default 4GiB)",
		"-log-format", `(default "text")`, "-shutdown-timeout", "(default 30s)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
}

func TestDepotd_BadSize(t *testing.T) {
	out, err := exec.Command(depotdBin, "--max-artifact-size", "4X").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `"4X" is not a size`) {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}

func TestDepotd_MaxArtifactSizeFlag(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--max-artifact-size", "1MiB", "--log-format", "text")
	b := make([]byte, 1<<20+1)
	dg := api.Digest(sha256.Sum256(b))
	_, err := d.sled.PutArtifact(context.Background(), dg, bytes.NewReader(b), int64(len(b)))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 413 {
		t.Fatalf("put over --max-artifact-size: %v", err)
	}
	d.stop(t)
}

func TestDepotd_JSONLogs(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--log-format", "json")
	if log := d.log.String(); !strings.Contains(log, `"msg":"listening"`) || strings.Contains(log, "msg=listening") {
		t.Fatalf("no JSON listening line:\n%s", log)
	}
	// The daemon answers on the addresses its JSON line gave.
	if _, err := d.sled.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
}

// TestDepotd_SIGTERMDrainsUpload: an upload in flight when SIGTERM arrives
// finishes, and the daemon then exits 0.
func TestDepotd_SIGTERMDrainsUpload(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	body := make([]byte, 16<<20)
	rand.NewChaCha8([32]byte{3}).Read(body)
	dg := api.Digest(sha256.Sum256(body))
	upload := make(chan error, 1)
	go func() {
		_, err := d.sled.PutArtifact(context.Background(), dg, &slowReader{b: body, chunk: 1 << 20, pause: 20 * time.Millisecond}, int64(len(body)))
		upload <- err
	}()
	for i := 0; ; i++ { // wait for the upload to reach the store
		if ents, _ := os.ReadDir(filepath.Join(d.mirrors[0], "tmp")); len(ents) > 0 {
			break
		}
		if i == 500 {
			t.Fatal("upload never reached the store")
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-upload; err != nil {
		t.Fatalf("upload in flight at SIGTERM: %v", err)
	}
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	d = startDaemon(t, filepath.Dir(d.mirrors[0]))
	checkNothingPartial(t, d)
	if _, list, _ := d.sled.ListArtifacts(context.Background()); list[dg] != 2 {
		t.Fatalf("drained upload not stored: %v", list)
	}
	d.stop(t)
}

// TestDepotd_SIGKILLDuringUpload kills the daemon at a random point of a
// large upload, again and again, and checks after each restart that nothing
// partial is visible: every listed artifact is whole, and no temp file
// survives.
func TestDepotd_SIGKILLDuringUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const size = 64 << 20
	body := make([]byte, size)
	rand.NewChaCha8([32]byte{2}).Read(body)
	dg := api.Digest(sha256.Sum256(body))
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	ctx := context.Background()
	completed, leftTemp := 0, 0
	start := time.Now()
	for i := 0; i < 15; i++ {
		d := startDaemon(t, dir)
		upload := make(chan error, 1)
		go func() {
			// At least 256 ms per upload: 1 MiB every 4 ms.
			t0 := time.Now()
			_, err := d.sled.PutArtifact(ctx, dg, &slowReader{b: body, chunk: 1 << 20, pause: 4 * time.Millisecond}, size)
			if err == nil {
				t.Logf("round %d: upload took %v", i, time.Since(t0).Round(time.Millisecond))
			}
			upload <- err
		}()
		// An upload takes ~300-500 ms here: most kills land in it, some after.
		time.Sleep(time.Duration(rng.Int64N(int64(700 * time.Millisecond))))
		d.kill(t)
		if err := <-upload; err == nil {
			completed++
		}
		for _, m := range d.mirrors {
			if ents, _ := os.ReadDir(filepath.Join(m, "tmp")); len(ents) > 0 {
				leftTemp++ // what the restart must clear
				break
			}
		}

		d = startDaemon(t, dir)
		checkNothingPartial(t, d)
		// Start the next round empty, so every round writes.
		if err := d.sled.DeleteArtifact(ctx, dg); err != nil {
			t.Fatal(err)
		}
		d.stop(t)
		if t.Failed() {
			t.Fatalf("round %d failed", i)
		}
	}
	t.Logf("15 rounds in %v; %d uploads completed before the kill, %d kills left temp files", time.Since(start).Round(time.Millisecond), completed, leftTemp)
}

// checkNothingPartial checks a freshly started daemon: every listed artifact
// serves bytes that hash to its name with the right length, and the mirrors
// hold nothing but the index and whole artifacts.
func checkNothingPartial(t *testing.T, d *daemon) {
	t.Helper()
	ctx := context.Background()
	_, list, err := d.sled.ListArtifacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for dg := range list {
		rc, n, err := d.depot.GetArtifact(ctx, dg)
		if err != nil {
			t.Fatalf("get listed %s: %v", dg, err)
		}
		h := sha256.New()
		got, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || got != n || api.Digest(h.Sum(nil)) != dg {
			t.Errorf("listed %s: read %d of %d bytes (%v), hash %x", dg, got, n, err, h.Sum(nil))
		}
	}
	for _, m := range d.mirrors {
		err := filepath.WalkDir(m, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(m, p)
			rel = filepath.ToSlash(rel)
			switch {
			case rel == "index.db", rel == "meta/artifacts-config.json", rel == "meta/.depot-mirror":
			case artifactPath.MatchString(rel):
				if _, ok := list[mustDigest(t, filepath.Base(rel))]; !ok {
					t.Errorf("mirror %s holds %s, which is not listed", m, rel)
				}
			default:
				t.Errorf("mirror %s: leftover file %s", m, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

var artifactPath = regexp.MustCompile(`^artifacts/[0-9a-f]{2}/[0-9a-f]{64}$`)

func mustDigest(t testing.TB, s string) api.Digest {
	d, err := api.ParseDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// slowReader yields b with a pause after every chunk bytes.
type slowReader struct {
	b     []byte
	chunk int
	pause time.Duration
	since int // bytes since the last pause
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if r.since >= r.chunk {
		time.Sleep(r.pause)
		r.since = 0
	}
	n := copy(p[:min(len(p), r.chunk-r.since)], r.b)
	r.b = r.b[n:]
	r.since += n
	return n, nil
}
