package depot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"testing"
)

var uuidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestCatalog_TrustRoots: roots get UUIDs, a second add of the same
// document returns the first record, and get and delete go by UUID.
func TestCatalog_TrustRoots(t *testing.T) {
	cat, err := OpenCatalog(filepath.Join(t.TempDir(), "catalog.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	doc := []byte(`{"signed":{"_type":"root"},"signatures":[]}`)
	sum := sha256.Sum256(doc)
	a, created, err := cat.AddTrustRoot(t.Context(), doc, "api", nil)
	if err != nil || !created || !uuidForm.MatchString(a.ID) || a.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("add = %+v, %v, %v", a, created, err)
	}
	again, created, err := cat.AddTrustRoot(t.Context(), doc, "api", nil)
	if err != nil || created || again.ID != a.ID {
		t.Fatalf("second add = %+v, %v, %v; want the first record", again, created, err)
	}
	got, err := cat.TrustRoot(t.Context(), a.ID)
	if err != nil || got.ID != a.ID || string(got.Root) != string(doc) {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := cat.TrustRoot(t.Context(), newUUID()); !errors.Is(err, ErrTrustRootNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if err := cat.DeleteTrustRoot(t.Context(), a.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := cat.DeleteTrustRoot(t.Context(), a.ID, nil); !errors.Is(err, ErrTrustRootNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestCatalog_TrustRoots_Legacy: a record from before UUIDs (keyed and
// identified by the document's sha256, the document under "root") reads
// with a stable UUID and can be fetched and deleted by it.
func TestCatalog_TrustRoots_Legacy(t *testing.T) {
	cat, err := OpenCatalog(filepath.Join(t.TempDir(), "catalog.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	doc := []byte(`{"signed":{"_type":"root"},"signatures":[]}`)
	sum := sha256.Sum256(doc)
	sha := hex.EncodeToString(sum[:])
	old, _ := json.Marshal(map[string]any{"id": sha, "time_created": "2026-01-01T00:00:00Z", "source": "api", "root": json.RawMessage(doc)})
	if err := cat.kv.update(t.Context(), func(tx kvTx) error { return tx.Bucket(bucketTrustRoots).Put([]byte(sha), old) }); err != nil {
		t.Fatal(err)
	}
	roots, err := cat.TrustRoots(t.Context())
	if err != nil || len(roots) != 1 {
		t.Fatalf("roots = %+v, %v", roots, err)
	}
	r := roots[0]
	if !uuidForm.MatchString(r.ID) || r.SHA256 != sha || string(r.Root) != string(doc) {
		t.Fatalf("legacy root read as %+v", r)
	}
	if again, created, err := cat.AddTrustRoot(t.Context(), doc, "api", nil); err != nil || created || again.ID != r.ID {
		t.Fatalf("re-adding a legacy root = %+v, %v, %v", again, created, err)
	}
	if err := cat.DeleteTrustRoot(t.Context(), r.ID, nil); err != nil {
		t.Fatal(err)
	}
	if roots, _ := cat.TrustRoots(t.Context()); len(roots) != 0 {
		t.Fatalf("roots after delete: %+v", roots)
	}
}
