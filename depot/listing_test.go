package depot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"depot/depot"
	"depot/store"
)

// wantListJSON is GET /artifacts as encoding/json writes it from the
// sled's current state.
func wantListJSON(t *testing.T, s *depot.Sled) []byte {
	t.Helper()
	ctx := context.Background()
	gen, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list := make(map[store.Digest]int, len(infos))
	for _, in := range infos {
		list[in.Digest] = in.Copies
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(struct {
		Generation *uint64              `json:"generation"`
		List       map[store.Digest]int `json:"list"`
	}{gen, list}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The cached listing is what encoding/json would write, after every kind of
// change: puts, a config, a delete, a mirror turning unhealthy.
func TestSled_ListJSON_FollowsEveryChange(t *testing.T) {
	e := newEnv(t, depot.SledOptions{})
	ctx := context.Background()
	check := func(step string) {
		t.Helper()
		for range 2 { // the second call is served from the cache
			got, err := e.sled.ListJSON(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := wantListJSON(t, e.sled); !bytes.Equal(got, want) {
				t.Fatalf("%s: ListJSON = %s, want %s", step, got, want)
			}
		}
	}
	check("empty, unmanaged")
	var ds []store.Digest
	for i := range 5 {
		if err := e.put(t, artifact(i), nil); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, digest(artifact(i)))
		check("after a put")
	}
	if err := e.sled.SetConfig(ctx, depot.Config{Generation: 3, Artifacts: ds[:4]}); err != nil {
		t.Fatal(err)
	}
	check("after a config")
	if err := e.sled.SetConfig(ctx, depot.Config{Generation: 4, Artifacts: ds[:2]}); err != nil {
		t.Fatal(err)
	}
	check("after a smaller config")
	if err := e.sled.Delete(ctx, ds[3]); err != nil {
		t.Fatal(err)
	}
	check("after a delete")
	// A mirror whose index vanishes is marked unhealthy: copies drop to 1.
	if err := os.Remove(filepath.Join(e.mirrors[1], "index.db")); err != nil {
		t.Fatal(err)
	}
	e.st.CheckMirrors(ctx)
	check("after a mirror failed")
	if got, _ := e.sled.ListJSON(ctx); !bytes.Contains(got, []byte(`":1`)) {
		t.Fatalf("listing after a mirror failed: %s, want copies 1", got)
	}
}
