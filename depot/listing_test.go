package depot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	// Changes merged into the kept list: several between two calls, on
	// either side of entries already listed, one of them a delete.
	for i := 100; i < 130; i += 3 {
		for j := range 3 {
			if err := e.put(t, artifact(i+j), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.sled.Delete(ctx, digest(artifact(i-2))); err != nil {
			t.Fatal(err)
		}
		check("after three puts and a delete")
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
	// A put on the one healthy mirror is merged in with copies 1.
	late := artifact(200)
	if err := e.sled.SetConfig(ctx, depot.Config{Generation: 5, Artifacts: append(ds[:2:2], digest(late))}); err != nil {
		t.Fatal(err)
	}
	check("after a config naming a new artifact")
	if err := e.put(t, late, gen(5)); err != nil {
		t.Fatal(err)
	}
	check("after a put on one mirror")
	if got, _ := e.sled.ListJSON(ctx); !bytes.Contains(got, []byte(digest(late).String()+`":1`)) {
		t.Fatalf("listing after a put on one mirror: %s, want it with copies 1", got)
	}
}

// BenchmarkListJSON measures GET /artifacts' body at 100,000 artifacts on
// two mirrors: served unchanged from the cache, and right after a put (the
// put itself is not timed). The tree is laid out as files the store adopts
// at open, which takes a while before the first figure.
func BenchmarkListJSON(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	e := &env{mirrors: []string{filepath.Join(dir, "m2a"), filepath.Join(dir, "m2b")}, peer: newFakePeer()}
	for _, m := range e.mirrors {
		for i := range n {
			body := []byte(fmt.Sprintf("list bench %d", i))
			h := digest(body).String()
			p := filepath.Join(m, "artifacts", h[:2], h)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, body, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	e.open(b, depot.SledOptions{})
	ctx := context.Background()
	if got, _ := e.sled.List(ctx); len(got) != n {
		b.Fatalf("listed %d artifacts, want %d", len(got), n)
	}
	b.Run("unchanged", func(b *testing.B) {
		if _, err := e.sled.ListJSON(ctx); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := e.sled.ListJSON(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("after-put", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			if err := e.put(b, []byte(fmt.Sprintf("list bench put %d", i)), nil); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := e.sled.ListJSON(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
