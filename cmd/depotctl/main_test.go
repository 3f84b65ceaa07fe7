package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/server"
	"depot/server/api"
	"depot/server/client"
	"depot/server/remote"
	"depot/server/servertest"
	"depot/store"
	"depot/tuf/tuftest"
)

// daemon is an in-process depotd (sled + coordinator + replicator) on
// loopback listeners.
type daemon struct {
	url, depotURL, operatorURL string
	mirrors                    []string
	logs                       *servertest.Buffer
}

// startDaemon starts a daemon over two fresh mirrors; the replicator
// runs in the background, so uploads become durable. Cleanup stops it.
func startDaemon(t testing.TB) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{
		mirrors: []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")},
		logs:    &servertest.Buffer{},
	}
	log := slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())

	st, err := store.Open(ctx, store.Options{Mirrors: d.mirrors, Logger: log})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	hc := client.DefaultHTTPClient()
	sled, err := depot.NewSled(ctx, depot.SledOptions{
		Store: st, Peer: remote.Peer{HTTP: hc}, Logger: log, HoldReconciler: true,
	})
	if err != nil {
		t.Fatalf("new sled: %v", err)
	}
	cat, err := depot.OpenCatalog(filepath.Join(dir, "catalog.db"), 0)
	if err != nil {
		t.Fatalf("open catalog: %v", err)
	}
	coord, err := depot.NewCoordinator(ctx, depot.CoordinatorOptions{Catalog: cat, Local: sled, Spool: st, Logger: log})
	if err != nil {
		t.Fatalf("new coordinator: %v", err)
	}
	sledLn, depotLn, opLn := servertest.Listen(t), servertest.Listen(t), servertest.Listen(t)
	d.url, d.depotURL = "http://"+sledLn.Addr().String(), "http://"+depotLn.Addr().String()
	d.operatorURL = "http://" + opLn.Addr().String()
	rep := depot.NewReplicator(coord, depot.ReplicationOptions{
		Local:      depot.LocalSled{Sled: sled, DepotURL: d.depotURL},
		LocalStore: st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			return remote.NewSledClient(rec.ControlURL, hc)
		},
		Logger: log,
	})
	sled.StartReconciler()
	srv := server.New(server.Config{
		Sled: sled, Coordinator: coord, Replicator: rep, Logger: log, Version: "test",
		DepotURL: d.depotURL, ShutdownTimeout: 2 * time.Second,
	})

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rep.Run(ctx) }()
	served := make(chan error, 1)
	go func() { defer wg.Done(); served <- srv.Serve(ctx, sledLn, depotLn, opLn) }()
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("daemon did not stop 10s after its context was cancelled")
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		sled.Close()
		cat.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs.String())
		}
	})
	return d
}

// result is one depotctl run.
type result struct {
	code           int
	stdout, stderr string
}

// ctl runs depotctl against d (through DEPOT_URL; nil d: no environment).
func ctl(t testing.TB, d *daemon, args ...string) result {
	t.Helper()
	return ctlIn(t, d, nil, args...)
}

func ctlIn(t testing.TB, d *daemon, stdin io.Reader, args ...string) result {
	t.Helper()
	env := map[string]string{}
	if d != nil {
		env["DEPOT_URL"] = d.url
		env["DEPOT_OPERATOR_URL"] = d.operatorURL
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, args, stdin, &out, &errb, func(k string) string { return env[k] })
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	t.Logf("depotctl %s → %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, clip(r.stdout), r.stderr)
	return r
}

// clip shortens long output (downloads to stdout) for the test log.
func clip(s string) string {
	if len(s) > 4000 {
		return s[:4000] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// ok runs depotctl and fails the test unless it exits 0.
func ok(t testing.TB, d *daemon, args ...string) result {
	t.Helper()
	r := ctl(t, d, args...)
	if r.code != 0 {
		t.Fatalf("depotctl %s: exit %d, stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// decode parses a --json result into v.
func decode(t testing.TB, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not the JSON of a %T: %v\n%s", v, err, r.stdout)
	}
}

// writeRepo builds a signed repository with two artifacts and writes
// repo.zip and root.json into a temp dir.
func writeRepo(t testing.TB, version string, seed byte) (zipPath, rootPath string) {
	t.Helper()
	b := tuftest.NewBuilder(t)
	var list []tuftest.Artifact
	for _, kind := range []string{"zone", "sp"} {
		name := kind + "-" + version + ".bin"
		b.AddTarget(name, bytes.Repeat([]byte{seed, kind[0]}, 60_000))
		list = append(list, tuftest.Artifact{Name: kind, Version: version, Kind: kind, Target: name})
	}
	b.SetManifest(version, list)
	dir := t.TempDir()
	zipPath, rootPath = filepath.Join(dir, "repo-"+version+".zip"), filepath.Join(dir, "root.json")
	if err := os.WriteFile(zipPath, b.Archive(tuftest.Zip), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootPath, b.RootJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	return zipPath, rootPath
}

func writeBlob(t testing.TB, n int, seed byte) (string, []byte, api.Digest) {
	t.Helper()
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	path := filepath.Join(t.TempDir(), "blob.bin")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b, sha256.Sum256(b)
}

func TestUpload_WaitUntilDurable(t *testing.T) {
	d := startDaemon(t)
	zipPath, rootPath := writeRepo(t, "1.0.0", 1)

	var tr api.TrustRoot
	decode(t, ok(t, d, "--json", "trust-roots", "add", rootPath), &tr)
	if tr.ID == "" {
		t.Fatalf("trust root = %+v", tr)
	}
	if r := ok(t, d, "trust-roots", "ls"); !strings.Contains(r.stdout, tr.ID) {
		t.Fatalf("trust-roots ls does not list %s", tr.ID)
	}

	start := time.Now()
	r := ok(t, d, "upload", zipPath, "--wait", "--timeout", "60s")
	t.Logf("upload --wait took %s", time.Since(start))
	if !strings.Contains(r.stdout, "repository 1.0.0: inserted") {
		t.Errorf("upload output lacks the version and status:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "durable") && !strings.Contains(r.stdout, "complete") {
		t.Errorf("upload --wait output lacks the final state:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "upload repo-1.0.0.zip: ") {
		t.Errorf("no progress line on stderr:\n%s", r.stderr)
	}

	// Again, with --json and --wait=complete: two documents.
	r = ok(t, d, "--json", "upload", zipPath, "--wait=complete", "--timeout=60s")
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var res api.UploadResult
	var p api.RepoProgress
	if err := dec.Decode(&res); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if res.Status != api.UploadAlreadyExists || res.Repo.SystemVersion != "1.0.0" || len(res.Repo.Artifacts) != 2 {
		t.Errorf("upload result = %+v", res)
	}
	if p.State != api.RepoComplete || len(p.Artifacts) != 2 || len(p.Artifacts[0].Sleds) != 1 {
		t.Errorf("progress = %+v", p)
	}
}

func TestUpload_WaitTimesOut(t *testing.T) {
	d := startDaemon(t)
	// A second in-service sled that is down: the repository becomes
	// durable (on the local sled) but never complete.
	down := servertest.Listen(t)
	downURL := "http://" + down.Addr().String()
	down.Close()
	ok(t, d, "sleds", "add", "sled-down", "--control", downURL)
	zipPath, rootPath := writeRepo(t, "4.0.0", 4)
	ok(t, d, "trust-roots", "add", rootPath)

	start := time.Now()
	r := ctl(t, d, "upload", zipPath, "--wait=complete", "--timeout", "1s")
	// The state it names is durable once the first activation ran; on a
	// loaded machine that may take longer than the 1s wait.
	if r.code != 1 || !strings.Contains(r.stderr, "depotctl: repository 4.0.0 is not complete after 1s (") ||
		!(strings.Contains(r.stderr, "(durable: ") || strings.Contains(r.stderr, "(replicating: ")) {
		t.Fatalf("exit %d, stderr %q; want 1 and a timeout naming the state", r.code, r.stderr)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("the 1s wait took %s", el)
	}
	ok(t, d, "upload", zipPath, "--wait", "--timeout", "30s")
}

func TestUpload_FromStdin(t *testing.T) {
	d := startDaemon(t)
	zipPath, rootPath := writeRepo(t, "3.0.0", 3)
	ok(t, d, "trust-roots", "add", rootPath)
	f, err := os.Open(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := ctlIn(t, d, f, "--json", "upload", "-", "--file-name", "piped.zip")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var res api.UploadResult
	decode(t, r, &res)
	if res.Status != api.UploadInserted || res.Repo.FileName != "piped.zip" {
		t.Fatalf("result = %+v", res)
	}
}

func TestUpload_Refused(t *testing.T) {
	d := startDaemon(t)
	zipPath, _ := writeRepo(t, "1.0.0", 1) // its root is not trusted
	r := ctl(t, d, "upload", zipPath)
	if r.code != 1 || !strings.Contains(r.stderr, "depotctl: REPOSITORY_INVALID: ") || !strings.Contains(r.stderr, "request_id") {
		t.Fatalf("exit %d, stderr %q; want 1 and REPOSITORY_INVALID with a request id", r.code, r.stderr)
	}
}

func TestRepos_LsShowRm(t *testing.T) {
	d := startDaemon(t)
	zipPath, rootPath := writeRepo(t, "2.0.0", 2)
	ok(t, d, "trust-roots", "add", rootPath)
	ok(t, d, "upload", zipPath)

	var repos []api.Repo
	decode(t, ok(t, d, "--json", "repos", "ls"), &repos)
	if len(repos) != 1 || repos[0].SystemVersion != "2.0.0" || len(repos[0].Artifacts) != 2 {
		t.Fatalf("repos = %+v", repos)
	}
	if r := ok(t, d, "repos", "ls"); !strings.Contains(r.stdout, "SYSTEM VERSION") || !strings.Contains(r.stdout, "2.0.0") {
		t.Errorf("table:\n%s", r.stdout)
	}

	var p api.RepoProgress
	decode(t, ok(t, d, "--json", "repos", "show", "2.0.0"), &p)
	if p.SystemVersion != "2.0.0" || len(p.Artifacts) != 2 || p.State == "" {
		t.Fatalf("progress = %+v", p)
	}
	r := ok(t, d, "repos", "show", "2.0.0")
	for _, a := range p.Artifacts {
		if !strings.Contains(r.stdout, a.Hash.String()) {
			t.Errorf("show does not list artifact %s:\n%s", a.Hash, r.stdout)
		}
	}

	ok(t, d, "repos", "rm", "2.0.0")
	r = ctl(t, d, "repos", "show", "2.0.0")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "depotctl: NOT_FOUND: ") || !strings.Contains(r.stderr, "(request_id ") {
		t.Fatalf("show of a removed repo: exit %d, stderr %q; want 1 and NOT_FOUND", r.code, r.stderr)
	}
	decode(t, ok(t, d, "--json", "repos", "ls"), &repos)
	if len(repos) != 0 {
		t.Fatalf("repos after rm = %+v", repos)
	}
}

func TestArtifacts_PutGetRoundTrip(t *testing.T) {
	d := startDaemon(t)
	path, data, dg := writeBlob(t, 3<<20+17, 7)

	var res api.PutResult
	decode(t, ok(t, d, "--json", "artifacts", "put", path), &res)
	if res.Datasets != 2 || res.SuccessfulWrites != 2 {
		t.Fatalf("put result = %+v", res)
	}
	var list api.ListResponse
	decode(t, ok(t, d, "--json", "artifacts", "ls"), &list)
	if list.List[dg] != 2 || list.Generation != nil {
		t.Fatalf("ls = %+v", list)
	}

	out := filepath.Join(t.TempDir(), "got.bin")
	ok(t, d, "artifacts", "get", dg.String(), "-o", out)
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs (%v)", err)
	}

	// To stdout, with the depot URL given instead of discovered.
	r := ok(t, d, "--depot-url", d.depotURL, "artifacts", "get", dg.String(), "-o", "-")
	if r.stdout != string(data) {
		t.Fatalf("stdout has %d bytes, want the artifact's %d", len(r.stdout), len(data))
	}

	ok(t, d, "artifacts", "rm", dg.String())
	r = ctl(t, d, "artifacts", "get", dg.String(), "-o", filepath.Join(t.TempDir(), "x"))
	if r.code != 1 || !strings.Contains(r.stderr, "NOT_FOUND") {
		t.Fatalf("get of a deleted artifact: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestArtifacts_GetCorruptedOnDisk(t *testing.T) {
	d := startDaemon(t)
	path, _, dg := writeBlob(t, 1<<20, 9)
	ok(t, d, "artifacts", "put", path)

	// Flip a byte of every copy behind the daemon's back.
	n := 0
	for _, m := range d.mirrors {
		files, _ := filepath.Glob(filepath.Join(m, "*", "*", dg.String()))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n != 2 {
		t.Fatalf("found %d stored copies, want 2", n)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "got.bin")
	r := ctl(t, d, "artifacts", "get", dg.String(), "-o", out)
	if r.code != 1 || !strings.Contains(r.stderr, "sha256 mismatch") {
		t.Fatalf("exit %d, stderr %q; want 1 and a sha256 mismatch", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}

	r = ctl(t, d, "artifacts", "get", dg.String(), "-o", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "sha256 mismatch") {
		t.Fatalf("to stdout: exit %d, stderr %q; want 1 and a sha256 mismatch", r.code, r.stderr)
	}
}

func TestArtifacts_PutGenerationAndConfig(t *testing.T) {
	d := startDaemon(t)
	path, _, dg := writeBlob(t, 4096, 11)

	// A config that wants the blob, then a put at its generation.
	var cfg api.Config
	decode(t, ok(t, d, "--json", "config", "set", "--generation", "7", dg.String()), &cfg)
	decode(t, ok(t, d, "--json", "config", "get"), &cfg)
	if cfg.Generation != 7 || len(cfg.Artifacts) != 1 || cfg.Artifacts[0] != dg {
		t.Fatalf("config = %+v", cfg)
	}
	r := ctl(t, d, "artifacts", "put", path, "--generation", "6")
	if r.code != 1 || !strings.Contains(r.stderr, "depotctl: GENERATION") {
		t.Fatalf("put at a stale generation: exit %d, stderr %q", r.code, r.stderr)
	}
	ok(t, d, "artifacts", "put", path, "--generation", "7")
	r = ctl(t, d, "config", "set", "--generation", "6")
	if r.code != 1 || !strings.Contains(r.stderr, "CONFIG_GENERATION") {
		t.Fatalf("config set backwards: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestSleds_AddLsRm(t *testing.T) {
	d := startDaemon(t)
	var rec api.SledRecord
	decode(t, ok(t, d, "--json", "sleds", "add", "sled-b", "--control", "http://127.0.0.1:9", "--depot", "http://127.0.0.1:10"), &rec)
	if rec.ID != "sled-b" || rec.State != api.SledInService || rec.DepotURL != "http://127.0.0.1:10" {
		t.Fatalf("added = %+v", rec)
	}
	var sleds []api.SledRecord
	decode(t, ok(t, d, "--json", "sleds", "ls"), &sleds)
	if len(sleds) != 1 || sleds[0].ID != "sled-b" {
		t.Fatalf("sleds = %+v", sleds)
	}
	decode(t, ok(t, d, "--json", "sleds", "rm", "sled-b"), &rec)
	if rec.State != api.SledExpunged {
		t.Fatalf("after rm = %+v", rec)
	}
	if r := ctl(t, d, "sleds", "add", "x"); r.code != 2 || !strings.Contains(r.stderr, "control") {
		t.Fatalf("add without --control: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestStatusReplicationScrubCopies(t *testing.T) {
	d := startDaemon(t)

	var st client.StatusResponse
	decode(t, ok(t, d, "--json", "status"), &st)
	if len(st.Mirrors) != 2 || st.DepotURL != d.depotURL {
		t.Fatalf("status = %+v", st)
	}
	r := ok(t, d, "status")
	for _, want := range []string{"MIRRORS", "ok (2 of 2 mirrors healthy)", "SCRUB", "COPIES", "RECONCILER", d.mirrors[0]} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}

	ok(t, d, "replication", "activate")
	var rs api.ReplicationStatus
	decode(t, ok(t, d, "--json", "replication"), &rs)
	if len(rs.Sleds) == 0 && rs.Activations == 0 {
		t.Logf("no activation yet: %+v", rs)
	}
	r = ok(t, d, "replication", "--all")
	for _, want := range []string{"COUNTERS", "put_config", "SLEDS", "RECENT REQUESTS"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("replication lacks %q:\n%s", want, r.stdout)
		}
	}

	var ss api.ScrubStatus
	decode(t, ok(t, d, "--json", "scrub"), &ss)
	ok(t, d, "scrub")

	var jobs []api.CopyJob
	decode(t, ok(t, d, "--json", "copies"), &jobs)
	if len(jobs) != 0 {
		t.Fatalf("copies = %+v", jobs)
	}
	_, _, dg := writeBlob(t, 10, 1)
	if r := ctl(t, d, "copies", dg.String(), "--wait", "10ms"); r.code != 1 || !strings.Contains(r.stderr, "NOT_FOUND") {
		t.Fatalf("copies of an unknown hash: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDaemonDown(t *testing.T) {
	ln := servertest.Listen(t)
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, args := range [][]string{{"status"}, {"repos", "ls"}, {"artifacts", "get", strings.Repeat("a", 64), "-o", "-"}} {
		r := ctl(t, nil, append([]string{"--url", url, "--operator-url", url}, args...)...)
		want := "depotctl: cannot reach depotd at " + url + ": connection refused"
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", args, r.code, r.stderr, want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{},
		{"--no-such-flag", "status"},
		{"status", "extra"},
		{"repos"},
		{"repos", "frob"},
		{"repos", "show"},
		{"repos", "show", "a", "b"},
		{"artifacts", "get", "not-a-hash"},
		{"artifacts", "put"},
		{"upload", "x.zip", "--wait=forever"},
		{"upload", "x.zip", "--timeout", "5s"},
		{"config", "set", "abc"},
		{"copies", "--wait", "1s"},
		{"--url", "ftp://x", "status"},
		{"replication", "nope"},
	} {
		r := ctl(t, nil, args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "depotctl: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a depotctl: message", args, r.code, r.stderr)
		}
	}
	if r := ctl(t, nil, "--help"); r.code != 0 || !strings.Contains(r.stdout, "upload") {
		t.Errorf("--help: exit %d, stdout %q", r.code, r.stdout)
	}
}
