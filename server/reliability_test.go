package server_test

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"depot/server/api"
	"depot/store"
	"depot/store/storetest"
)

func withStoreFS(f func(root string) store.FS) envOpt {
	return func(c *envConfig) { c.storeFS = f }
}

// faultEnv is an env whose store runs over one FaultFS per mirror.
func faultEnv(t *testing.T, opts ...envOpt) (*env, map[string]*storetest.FaultFS) {
	t.Helper()
	faults := map[string]*storetest.FaultFS{}
	var mu = make(chan struct{}, 1)
	get := func(root string) store.FS {
		mu <- struct{}{}
		defer func() { <-mu }()
		if faults[root] == nil {
			faults[root] = storetest.New()
		}
		return faults[root]
	}
	e := newEnv(t, append(opts, withStoreFS(get))...)
	return e, faults
}

func mirrorsHealthy(t *testing.T, e *env) []bool {
	t.Helper()
	_, body := do(t, "GET", e.sledURL+"/status", nil)
	var st struct {
		Mirrors []struct {
			Healthy bool `json:"healthy"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status: %v: %s", err, body)
	}
	var out []bool
	for _, m := range st.Mirrors {
		out = append(out, m.Healthy)
	}
	return out
}

// Issue 12, 1c: a process out of descriptors answers 503 SERVER_BUSY for
// the request and leaves the mirrors healthy.
func TestServer_OutOfDescriptors_ServerBusy(t *testing.T) {
	t.Parallel()
	e, faults := faultEnv(t)
	for _, m := range e.mirrors {
		faults[m].Set(storetest.Faults{OpenErr: syscall.EMFILE})
	}
	data := []byte("artifact while out of descriptors")
	resp, body := do(t, "PUT", e.sledURL+"/artifacts/"+store.Digest(sha256.Sum256(data)).String(), strings.NewReader(string(data)))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(api.ErrorCodeHeader) != api.CodeServerBusy {
		t.Fatalf("PUT = %d %s %s, want 503 SERVER_BUSY", resp.StatusCode, resp.Header.Get(api.ErrorCodeHeader), body)
	}
	for _, m := range e.mirrors {
		faults[m].Set(storetest.Faults{})
	}
	if h := mirrorsHealthy(t, e); len(h) != 2 || !h[0] || !h[1] {
		t.Fatalf("mirrors healthy = %v, want both", h)
	}
}

// Issue 12, 2: an upload spooled onto a full mirror is 507, not a
// malformed repository, and that mirror is marked unhealthy.
func TestServer_UploadOntoFullMirror_InsufficientStorage(t *testing.T) {
	t.Parallel()
	e, faults := faultEnv(t, withCoordinator())
	zip, _, _ := testRepo(t, "1.0.0")
	faults[e.mirrors[0]].Set(storetest.Faults{NoSpace: true})
	faults[e.mirrors[1]].Set(storetest.Faults{NoSpace: true})
	resp, body := e.putRepo(t, "file_name=repo.zip", zip)
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("upload = %d %s, want 507", resp.StatusCode, body)
	}
	if h := mirrorsHealthy(t, e); len(h) != 2 || h[0] {
		t.Fatalf("mirrors healthy = %v, want the spool's mirror unhealthy", h)
	}
}
