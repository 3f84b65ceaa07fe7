package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"depot/store"
)

// getOnlyDepot serves body under d's path to GET only, as omicron's repo
// depot documents it: HEAD is 405.
func getOnlyDepot(t *testing.T, d store.Digest, body string) (string, *atomic.Int32) {
	t.Helper()
	var heads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != "/artifact/sha256/"+d.String() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &heads
}

// TestPeer_Stat: HEAD answers the size; a peer without HEAD is asked with
// a GET; 404 is store.ErrNotFound either way.
func TestPeer_Stat(t *testing.T) {
	ctx := context.Background()
	body := strings.Repeat("x", 1234)
	d, _ := store.ParseDigest(strings.Repeat("ab", 32))
	other, _ := store.ParseDigest(strings.Repeat("cd", 32))
	u, heads := getOnlyDepot(t, d, body)
	if n, err := (Peer{}).Stat(ctx, u, d); err != nil || n != int64(len(body)) {
		t.Fatalf("Stat on a GET-only depot = %d, %v", n, err)
	}
	if heads.Load() != 1 {
		t.Fatalf("%d HEADs, want 1 before the GET", heads.Load())
	}
	if _, err := (Peer{}).Stat(ctx, u, other); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat of an absent artifact: %v, want store.ErrNotFound", err)
	}
	if _, err := (Peer{}).Stat(ctx, answer(t, http.StatusNotFound, "NOT_FOUND"), d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat, HEAD 404: %v", err)
	}
	if _, err := (Peer{}).Stat(ctx, answer(t, http.StatusServiceUnavailable, "NO_MIRRORS"), d); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat, HEAD 503: %v, want an error other than not found", err)
	}
}
