package server_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"depot/depot"
	"depot/store"
	"depot/tuf/tuftest"
)

// closingSpooler closes the spool file once it is written, so every read
// of it fails (with an error that names its path).
type closingSpooler struct{ *store.Store }

func (s closingSpooler) SpoolFrom(ctx context.Context, f *os.File, body io.Reader) (int64, store.Digest, error) {
	n, d, err := s.Store.SpoolFrom(ctx, f, body)
	f.Close()
	return n, d, err
}

// TestServer_FailingUpload_MessageNamesNoServerPath: whatever makes an
// upload fail, a 4xx message (the error's own text) never carries a path
// on the server; a spool that cannot be read is the server's fault (5xx),
// not REPOSITORY_INVALID.
func TestServer_FailingUpload_MessageNamesNoServerPath(t *testing.T) {
	t.Parallel()
	b := tuftest.NewBuilder(t)
	data, _ := blob(t, 50_000)
	b.AddTarget("zone.bin", data)
	b.SetManifest("1.0.0", []tuftest.Artifact{{Name: "zone", Version: "1.0.0", Kind: "zone", Target: "zone.bin"}})
	good, root := b.Zip(), b.RootJSON()
	b.EditFiles(func(es []tuftest.Entry) []tuftest.Entry {
		for i, en := range es {
			if strings.HasSuffix(en.Name, "zone.bin") {
				d := append([]byte(nil), en.Data...)
				d[len(d)/2] ^= 0xff
				es[i].Data = d
			}
		}
		return es
	})
	tampered := b.Zip()

	check := func(t *testing.T, e *env, archive []byte, wantServerFault bool) {
		t.Helper()
		resp, body := e.putRepo(t, "file_name=repo.zip", archive)
		if resp.StatusCode < 400 {
			t.Fatalf("upload = %d %s, want a failure", resp.StatusCode, body)
		}
		if wantServerFault && resp.StatusCode < 500 {
			t.Fatalf("spool read failure = %d %s, want a 5xx (the archive is not at fault)", resp.StatusCode, body)
		}
		for _, p := range append([]string{filepath.Dir(e.mirrors[0])}, e.mirrors...) {
			if strings.Contains(string(body), p) {
				t.Fatalf("%d message names a server path (%s): %s", resp.StatusCode, p, body)
			}
		}
		for _, s := range []string{"/tmp", "upload-", os.TempDir()} {
			if strings.Contains(string(body), s) {
				t.Fatalf("%d message holds %q: %s", resp.StatusCode, s, body)
			}
		}
	}
	t.Run("tampered", func(t *testing.T) {
		e := newEnv(t, withCoordinator())
		e.trust(t, root)
		check(t, e, tampered, false)
	})
	t.Run("truncated", func(t *testing.T) {
		e := newEnv(t, withCoordinator())
		e.trust(t, root)
		check(t, e, good[:len(good)/2], false)
	})
	t.Run("spool-unreadable", func(t *testing.T) {
		e := newEnv(t, withCoordinator(), func(c *envConfig) {
			c.spool = func(st *store.Store) depot.Spooler { return closingSpooler{st} }
		})
		e.trust(t, root)
		check(t, e, good, true)
	})
}
