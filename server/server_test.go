package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/server/api"
	"depot/server/client"
)

const validHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" // sha256("")

// TestServer_UppercaseHash: omicron's ArtifactHash accepts upper-case hex,
// so paths do too; the artifact is stored and listed under lower case.
func TestServer_UppercaseHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "PUT", "http://"+e.sledAddr+"/artifacts/"+strings.ToUpper(validHex), strings.NewReader(""))
	if resp.StatusCode != 200 {
		t.Fatalf("PUT upper case: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", "http://"+e.sledAddr+"/artifacts", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"`+validHex+`"`) {
		t.Fatalf("list after PUT upper case: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "HEAD", "http://"+e.depotAddr+"/artifact/sha256/"+strings.ToUpper(validHex), nil)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"`+validHex+`"` {
		t.Fatalf("HEAD upper case: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	resp, body = do(t, "DELETE", "http://"+e.sledAddr+"/artifacts/"+strings.ToUpper(validHex), nil)
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE upper case: %d %s", resp.StatusCode, body)
	}
}

func TestServer_PutArtifact_BadCharacter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "PUT", "http://"+e.sledAddr+"/artifacts/"+validHex[:63]+"G", strings.NewReader(""))
	eb := wantError(t, resp, body, 400, "INVALID_HASH")
	if !strings.Contains(eb.Message, "hex digits") {
		t.Errorf("message %q does not say what is wrong", eb.Message)
	}
	e.checkMirrors(t)
}

func TestServer_PutArtifact_ShortHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "PUT", "http://"+e.sledAddr+"/artifacts/"+validHex[:63], strings.NewReader("x"))
	wantError(t, resp, body, 400, "INVALID_HASH")
	e.checkMirrors(t)
}

func TestServer_PutArtifact_LongHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "PUT", "http://"+e.sledAddr+"/artifacts/"+validHex+"0", strings.NewReader("x"))
	wantError(t, resp, body, 400, "INVALID_HASH")
}

func TestServer_PutArtifact_NonHexHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "PUT", "http://"+e.sledAddr+"/artifacts/"+validHex[:63]+"g", strings.NewReader("x"))
	wantError(t, resp, body, 400, "INVALID_HASH")
}

func TestServer_GetArtifact_InvalidHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "GET", "http://"+e.depotAddr+"/artifact/sha256/not-a-hash", nil)
	wantError(t, resp, body, 400, "INVALID_HASH")
}

func TestServer_DeleteArtifact_InvalidHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "DELETE", "http://"+e.sledAddr+"/artifacts/"+validHex[:62]+"zz", nil)
	wantError(t, resp, body, 400, "INVALID_HASH")
}

func TestServer_PutArtifact_HashMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := blob(t, 300<<10)
	_, other := blob(t, 1)
	_, err := e.sled.PutArtifact(context.Background(), other, bytes.NewReader(b), int64(len(b)))
	if !errors.Is(err, api.ErrHashMismatch) {
		t.Fatalf("err = %v, want ErrHashMismatch", err)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "HASH_MISMATCH" || ae.RequestID == "" {
		t.Fatalf("err = %#v", err)
	}
	e.checkMirrors(t) // nothing but the indexes: no temp files
	if _, list, err := e.sled.ListArtifacts(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("list = %v, %v", list, err)
	}
}

func TestServer_PutArtifact_ClientDisconnectsMidBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := blob(t, 1<<20)
	conn, _ := raw(t, e.sledAddr, fmt.Sprintf("PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", d, len(b)), b[:len(b)/2])
	e.waitTempFile(t) // the upload is in the store
	conn.Close()
	e.waitLog(t, `msg=request .*method=PUT path=/artifacts/`+d.String())
	e.checkMirrors(t)
	if _, err := e.depot.HeadArtifact(context.Background(), d); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("HEAD after aborted upload: %v", err)
	}
}

func TestServer_PutArtifact_DeclaredLengthOverLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMaxSize(1<<20))
	_, d := blob(t, 1)
	// Headers only: the answer must come without any of the body.
	_, br := raw(t, e.sledAddr, fmt.Sprintf("PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", d, 1<<20+1), nil)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	eb := wantError(t, resp, body, 413, "TOO_LARGE")
	if !strings.Contains(eb.Message, "1048576") {
		t.Errorf("message %q does not name the limit", eb.Message)
	}
	e.checkMirrors(t)
}

func TestServer_PutArtifact_ChunkedOverLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMaxSize(1<<20))
	b, d := blob(t, 1<<20+1)
	// size -1: sent chunked, so only reading can find it is too large.
	_, err := e.sled.PutArtifact(context.Background(), d, bytes.NewReader(b), -1)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 413 || !errors.Is(err, api.ErrTooLarge) {
		t.Fatalf("err = %v, want 413 TOO_LARGE", err)
	}
	e.waitLog(t, `msg=request .*method=PUT .*status=413`)
	e.checkMirrors(t)
}

func TestServer_PutArtifact_ChunkedAtLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMaxSize(1<<20))
	b, d := blob(t, 1<<20)
	res, err := e.sled.PutArtifact(context.Background(), d, bytes.NewReader(b), -1)
	if err != nil || res.SuccessfulWrites != 2 {
		t.Fatalf("put = %+v, %v", res, err)
	}
	e.checkMirrors(t, d)
}

func TestServer_PutArtifact_StalledBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withStall(300*time.Millisecond))
	b, d := blob(t, 64<<10)
	_, br := raw(t, e.sledAddr, fmt.Sprintf("PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", d, len(b)), b[:1000])
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	wantError(t, resp, body, 408, "BODY_TIMEOUT")
	e.checkMirrors(t)
}

func TestServer_PutArtifact_Concurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := blob(t, 256<<10)
	var wg sync.WaitGroup
	errs := make([]error, 32)
	results := make([]client.PutResult, 32)
	for i := range 32 {
		wg.Go(func() {
			results[i], errs[i] = e.sled.PutArtifact(context.Background(), d, bytes.NewReader(b), int64(len(b)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("put %d: %v", i, err)
		} else if results[i].SuccessfulWrites < 1 || results[i].Datasets != 2 {
			t.Errorf("put %d: %+v", i, results[i])
		}
	}
	e.checkMirrors(t, d)
	_, list, err := e.sled.ListArtifacts(context.Background())
	if err != nil || len(list) != 1 || list[d] != 2 {
		t.Fatalf("list = %v, %v", list, err)
	}
}

func TestServer_PutArtifact_Twice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := blob(t, 100<<10)
	ctx := context.Background()
	if res, err := e.sled.PutArtifact(ctx, d, bytes.NewReader(b), int64(len(b))); err != nil || res.SuccessfulWrites != 2 {
		t.Fatalf("first put = %+v, %v", res, err)
	}
	path := filepath.Join(e.mirrors[0], "artifacts", d.String()[:2], d.String())
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.sled.PutArtifact(ctx, d, bytes.NewReader(b), int64(len(b)))
	if err != nil || res.SuccessfulWrites != 2 || res.Datasets != 2 {
		t.Fatalf("second put = %+v, %v", res, err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Errorf("second put rewrote %s", path)
	}
	e.checkMirrors(t, d)
}

func TestServer_PutArtifact_Empty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d, _ := api.ParseDigest(validHex)
	if res, err := e.sled.PutArtifact(context.Background(), d, strings.NewReader(""), 0); err != nil || res.SuccessfulWrites != 2 {
		t.Fatalf("put = %+v, %v", res, err)
	}
	if n, err := e.depot.HeadArtifact(context.Background(), d); err != nil || n != 0 {
		t.Fatalf("head = %d, %v", n, err)
	}
}

func TestServer_PutArtifact_MirrorRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.RemoveAll(e.mirrors[1]); err != nil {
		t.Fatal(err)
	}
	b, d := blob(t, 100<<10)
	res, err := e.sled.PutArtifact(context.Background(), d, bytes.NewReader(b), int64(len(b)))
	if err != nil || res.SuccessfulWrites != 1 || res.Datasets != 2 {
		t.Fatalf("put = %+v, %v; want 1 of 2 writes", res, err)
	}
	st, err := e.sled.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Mirrors) != 2 || !st.Mirrors[0].Healthy || st.Mirrors[1].Healthy || st.Mirrors[1].LastError == "" {
		t.Fatalf("status mirrors = %+v, want the second unhealthy with an error", st.Mirrors)
	}
	rc, _, err := e.depot.GetArtifact(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, b) {
		t.Fatal("GET returned other bytes")
	}
}

func TestServer_GetArtifact_Absent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := blob(t, 1)
	for _, url := range []string{"http://" + e.depotAddr + "/artifact/sha256/" + d.String(), "http://" + e.sledAddr + "/artifacts/" + d.String()} {
		resp, body := do(t, "GET", url, nil)
		wantError(t, resp, body, 404, "NOT_FOUND")
	}
	if _, _, err := e.depot.GetArtifact(context.Background(), d); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("client GET: %v, want ErrNotFound", err)
	}
}

func TestServer_HeadArtifact_Absent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := blob(t, 1)
	resp, body := do(t, "HEAD", "http://"+e.depotAddr+"/artifact/sha256/"+d.String(), nil)
	if resp.StatusCode != 404 || len(body) != 0 || resp.Header.Get("X-Error-Code") != "NOT_FOUND" {
		t.Fatalf("HEAD absent: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if _, err := e.depot.HeadArtifact(context.Background(), d); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("client HEAD: %v, want ErrNotFound", err)
	}
}

// putBlob stores a fresh random artifact of n bytes.
func (e *env) putBlob(t testing.TB, n int) ([]byte, api.Digest) {
	t.Helper()
	b, d := blob(t, n)
	if _, err := e.sled.PutArtifact(context.Background(), d, bytes.NewReader(b), int64(n)); err != nil {
		t.Fatal(err)
	}
	return b, d
}

func TestServer_GetArtifact_Whole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := e.putBlob(t, 3<<20+17)
	for _, url := range []string{"http://" + e.depotAddr + "/artifact/sha256/" + d.String(), "http://" + e.sledAddr + "/artifacts/" + d.String()} {
		resp, body := do(t, "GET", url, nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, b) {
			t.Fatalf("GET %s: %d, %d bytes", url, resp.StatusCode, len(body))
		}
		if resp.Header.Get("ETag") != `"`+d.String()+`"` || resp.Header.Get("Content-Type") != "application/octet-stream" ||
			resp.ContentLength != int64(len(b)) {
			t.Errorf("headers %v", resp.Header)
		}
	}
	e.waitLog(t, fmt.Sprintf(`method=GET path=/artifact/sha256/%s status=200 bytes=%d`, d, len(b)))
}

func TestServer_GetArtifact_Range(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := e.putBlob(t, 200<<10)
	resp, body := do(t, "GET", "http://"+e.depotAddr+"/artifact/sha256/"+d.String(), nil, "Range", "bytes=1000-1999")
	if resp.StatusCode != 206 || !bytes.Equal(body, b[1000:2000]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-1999/%d", len(b)) {
		t.Errorf("Content-Range %q", cr)
	}
}

func TestServer_GetArtifact_RangeNotSatisfiable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := e.putBlob(t, 1000)
	resp, _ := do(t, "GET", "http://"+e.depotAddr+"/artifact/sha256/"+d.String(), nil, "Range", fmt.Sprintf("bytes=%d-", len(b)+10))
	if resp.StatusCode != 416 {
		t.Fatalf("status %d, want 416", resp.StatusCode)
	}
}

func TestServer_HeadArtifact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := e.putBlob(t, 12345)
	resp, body := do(t, "HEAD", "http://"+e.depotAddr+"/artifact/sha256/"+d.String(), nil)
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("HEAD: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp.ContentLength != int64(len(b)) || resp.Header.Get("ETag") != `"`+d.String()+`"` {
		t.Fatalf("HEAD headers: length %d, %v", resp.ContentLength, resp.Header)
	}
	if n, err := e.depot.HeadArtifact(context.Background(), d); err != nil || n != int64(len(b)) {
		t.Fatalf("client HEAD = %d, %v", n, err)
	}
}

func TestServer_GetArtifact_IfNoneMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := e.putBlob(t, 1000)
	resp, body := do(t, "GET", "http://"+e.depotAddr+"/artifact/sha256/"+d.String(), nil, "If-None-Match", `"`+d.String()+`"`)
	if resp.StatusCode != 304 || len(body) != 0 {
		t.Fatalf("If-None-Match: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestServer_GetArtifact_Client(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := e.putBlob(t, 1<<20)
	rc, n, err := e.depot.GetArtifact(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err != nil || cerr != nil || n != int64(len(b)) || !bytes.Equal(got, b) {
		t.Fatalf("GET: n=%d len=%d err=%v close=%v", n, len(got), err, cerr)
	}
}

func TestServer_DeleteArtifact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := e.putBlob(t, 1000)
	ctx := context.Background()
	if err := e.sled.DeleteArtifact(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.depot.HeadArtifact(ctx, d); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("HEAD after delete: %v", err)
	}
	e.checkMirrors(t)
}

func TestServer_DeleteArtifact_Absent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d := blob(t, 1)
	resp, body := do(t, "DELETE", "http://"+e.sledAddr+"/artifacts/"+d.String(), nil)
	if resp.StatusCode != 204 || len(body) != 0 {
		t.Fatalf("DELETE absent: %d %q", resp.StatusCode, body)
	}
}

func TestServer_ListArtifacts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, d1 := e.putBlob(t, 10)
	_, d2 := e.putBlob(t, 20)
	resp, body := do(t, "GET", "http://"+e.sledAddr+"/artifacts", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["generation"]) != "null" {
		t.Errorf("generation = %s, want null while unmanaged", raw["generation"])
	}
	gen, list, err := e.sled.ListArtifacts(context.Background())
	if err != nil || gen != nil || len(list) != 2 || list[d1] != 2 || list[d2] != 2 {
		t.Fatalf("list = %v %v %v", gen, list, err)
	}
}

func TestServer_ListArtifacts_Empty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, body := do(t, "GET", "http://"+e.sledAddr+"/artifacts", nil)
	if got := strings.TrimSpace(string(body)); got != `{"generation":null,"list":{}}` {
		t.Fatalf("body %s", got)
	}
}

func TestServer_Status(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, body := do(t, "GET", "http://"+e.sledAddr+"/status", nil)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "mirrors", "generation", "depot_url", "uptime_seconds"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status lacks %q: %s", k, body)
		}
	}
	st, err := e.sled.Status(context.Background())
	if err != nil || st.Version != "test" || st.Generation != nil || len(st.Mirrors) != 2 ||
		!st.Mirrors[0].Healthy || st.Mirrors[0].Path != e.mirrors[0] || st.UptimeSeconds < 0 ||
		st.DepotURL != "http://"+e.depotAddr {
		t.Fatalf("status = %+v, %v", st, err)
	}
}

func TestServer_UnknownRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "GET", "http://"+e.sledAddr+"/nope", nil)
	wantError(t, resp, body, 404, "NOT_FOUND")
	// The artifact route lives on the sled port only, and vice versa.
	resp, body = do(t, "GET", "http://"+e.depotAddr+"/artifacts/"+validHex, nil)
	wantError(t, resp, body, 404, "NOT_FOUND")
}

func TestServer_MethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "POST", "http://"+e.sledAddr+"/artifacts/"+validHex, nil)
	wantError(t, resp, body, 405, "METHOD_NOT_ALLOWED")
	if resp.Header.Get("Allow") == "" {
		t.Errorf("405 without Allow")
	}
	resp, body = do(t, "PUT", "http://"+e.depotAddr+"/artifact/sha256/"+validHex, strings.NewReader(""))
	wantError(t, resp, body, 405, "METHOD_NOT_ALLOWED")
}

func TestServer_RequestID_Honoured(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "GET", "http://"+e.sledAddr+"/nope", nil, "X-Request-Id", "coord-42.a:b")
	eb := wantError(t, resp, body, 404, "NOT_FOUND")
	if eb.RequestID != "coord-42.a:b" {
		t.Fatalf("request_id %q", eb.RequestID)
	}
	e.waitLog(t, `request_id=coord-42.a:b method=GET path=/nope status=404`)
}

func TestServer_RequestID_InvalidReplaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := do(t, "GET", "http://"+e.sledAddr+"/nope", nil, "X-Request-Id", "bad id\"with quotes")
	eb := wantError(t, resp, body, 404, "NOT_FOUND")
	if strings.Contains(eb.RequestID, " ") || len(eb.RequestID) != 32 {
		t.Fatalf("request_id %q", eb.RequestID)
	}
}

func TestServer_Shutdown_LetsUploadFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, d := blob(t, 512<<10)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := e.sled.PutArtifact(context.Background(), d, pr, int64(len(b)))
		pr.CloseWithError(err) // unblock our writes if the upload ends early
		done <- err
	}()
	if _, err := pw.Write(b[:len(b)/2]); err != nil {
		t.Fatalf("upload ended early: %v", <-done)
	}
	e.waitTempFile(t)
	e.cancel() // begin shutdown with the upload half done
	time.Sleep(100 * time.Millisecond)
	if _, err := pw.Write(b[len(b)/2:]); err != nil {
		t.Fatalf("upload ended early: %v", <-done)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("upload during shutdown: %v", err)
	}
	select {
	case err := <-e.served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		e.served <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	e.checkMirrors(t, d)
}

func TestServer_Shutdown_CutsOffStalledUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withShutdownTimeout(200*time.Millisecond))
	b, d := blob(t, 512<<10)
	_, br := raw(t, e.sledAddr, fmt.Sprintf("PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", d, len(b)), b[:100<<10])
	e.waitTempFile(t)
	start := time.Now()
	e.cancel()
	var err error
	select {
	case err = <-e.served:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("Serve = %v after %v, want an error after ~200ms", err, time.Since(start))
	}
	e.served <- nil // the cut-off is expected; keep Cleanup quiet
	if _, rerr := http.ReadResponse(br, nil); rerr == nil {
		t.Log("server answered the cut-off upload") // allowed, not required
	}
	e.checkMirrors(t)
}
