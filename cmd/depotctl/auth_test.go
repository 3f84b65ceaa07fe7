package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
)

// ctlEnv runs depotctl with exactly this environment.
func ctlEnv(t testing.TB, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	t.Logf("depotctl %s → %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, clip(r.stdout), r.stderr)
	return r
}

// TestAuth_TokenSources: --token, DEPOT_TOKEN and the token file (refused
// when others may read it) each authenticate; 401 and 403 say what to do.
func TestAuth_TokenSources(t *testing.T) {
	d := startDaemon(t)
	var admin api.TokenCreated
	decode(t, ok(t, d, "--json", "tokens", "create", "root", "--role", "admin"), &admin) // dev mode: open
	if !strings.HasPrefix(admin.Secret, "depot_") {
		t.Fatalf("secret %q", admin.Secret)
	}
	var viewer api.TokenCreated
	decode(t, ok(t, d, "--json", "--token", admin.Secret, "tokens", "create", "v", "--role", "viewer"), &viewer)

	r := ctl(t, d, "sleds", "ls")
	if r.code != exitRuntime || !strings.Contains(r.stderr, "UNAUTHENTICATED") || !strings.Contains(r.stderr, "DEPOT_TOKEN") {
		t.Fatalf("no token: %+v", r)
	}
	env := map[string]string{"DEPOT_URL": d.url, "DEPOT_OPERATOR_URL": d.operatorURL, "DEPOT_TOKEN": viewer.Secret}
	if r := ctlEnv(t, env, "sleds", "ls"); r.code != exitOK {
		t.Fatalf("DEPOT_TOKEN: %+v", r)
	}
	r = ctlEnv(t, env, "sleds", "rm", "x")
	if r.code != exitRuntime || !strings.Contains(r.stderr, "FORBIDDEN") || !strings.Contains(r.stderr, "admin") {
		t.Fatalf("viewer expunges: %+v", r)
	}

	cfg := t.TempDir()
	path := filepath.Join(cfg, "depot", "token")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(admin.Secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{"DEPOT_URL": d.url, "DEPOT_OPERATOR_URL": d.operatorURL, "XDG_CONFIG_HOME": cfg}
	r = ctlEnv(t, env, "sleds", "ls")
	if r.code != exitRuntime || !strings.Contains(r.stderr, "chmod 600") {
		t.Fatalf("a token file others can read: %+v", r)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ctlEnv(t, env, "tokens", "ls"); r.code != exitOK || !strings.Contains(r.stdout, "root") {
		t.Fatalf("token file: %+v", r)
	}
	// --token wins over the file.
	if r := ctlEnv(t, env, "--token", viewer.Secret, "tokens", "ls"); r.code != exitRuntime || !strings.Contains(r.stderr, "FORBIDDEN") {
		t.Fatalf("--token over the file: %+v", r)
	}
	if r := ctlEnv(t, env, "tokens", "revoke", "v"); r.code != exitOK {
		t.Fatalf("revoke: %+v", r)
	}
	if r := ctlEnv(t, map[string]string{"DEPOT_URL": d.url, "DEPOT_OPERATOR_URL": d.operatorURL, "DEPOT_TOKEN": viewer.Secret}, "sleds", "ls"); r.code != exitRuntime || !strings.Contains(r.stderr, "UNAUTHENTICATED") {
		t.Fatalf("a revoked token: %+v", r)
	}
}

// TestAudit_LinesFollowVerify: audit prints one stored record a line,
// --follow picks up new ones, and verify checks the chain and a
// checkpoint.
func TestAudit_LinesFollowVerify(t *testing.T) {
	d := startDaemon(t)
	ok(t, d, "sleds", "add", "s1", "--control", "http://127.0.0.1:1")
	ok(t, d, "sleds", "rm", "s1")
	r := ok(t, d, "audit")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	var rec api.AuditRecord
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.Seq != 2 || rec.Action != "sled.expunge" || rec.Actor != "anonymous (loopback)" {
		t.Fatalf("line 2 = %+v, %v", rec, err)
	}

	var v struct {
		Records int    `json:"records"`
		Head    string `json:"head"`
	}
	decode(t, ok(t, d, "--json", "audit", "verify"), &v)
	if v.Records != 2 || !strings.HasPrefix(v.Head, "2:") {
		t.Fatalf("verify = %+v", v)
	}
	ok(t, d, "audit", "verify", "--checkpoint", v.Head)
	bad := "2:" + strings.Repeat("0", 64)
	if r := ctl(t, d, "audit", "verify", "--checkpoint", bad); r.code != exitRuntime || !strings.Contains(r.stderr, "rewritten") {
		t.Fatalf("a wrong checkpoint: %+v", r)
	}
	if r := ctl(t, d, "audit", "verify", "--checkpoint", "9:"+strings.Repeat("0", 64)); r.code != exitRuntime || !strings.Contains(r.stderr, "removed") {
		t.Fatalf("a checkpoint past the end: %+v", r)
	}

	// --follow: a record appended later shows up; the command runs until
	// interrupted.
	var out, errb bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	w := &lockedBuffer{b: &out}
	go func() {
		done <- run(ctx, []string{"--operator-url", d.operatorURL, "audit", "--follow", "--since", "2"}, strings.NewReader(""), w, &errb, func(string) string { return "" })
	}()
	ok(t, d, "replication", "activate")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.String(), `"action":"replication.activate"`) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("--follow printed %q", w.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestTokens_FileLine: the line is one the daemon's tokens file accepts,
// for the token printed.
func TestTokens_FileLine(t *testing.T) {
	var got map[string]string
	decode(t, ok(t, nil, "--json", "tokens", "file-line", "ci", "operator"), &got)
	toks, errs := depot.ParseTokensFile(strings.NewReader(got["line"]))
	if len(errs) != 0 || len(toks) != 1 || toks[0].Name != "ci" || toks[0].Hash != depot.HashToken(got["secret"]).String() {
		t.Fatalf("line %q: %v %v", got["line"], toks, errs)
	}
	if r := ctl(t, nil, "tokens", "file-line", "ci", "root"); r.code != exitUsage {
		t.Fatalf("bad role: %+v", r)
	}
}

// lockedBuffer is a bytes.Buffer written by one goroutine and read by
// another.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
