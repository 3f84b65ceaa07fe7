package tuf_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"depot/tuf"
	"depot/tuf/tuftest"
)

func TestParseManifest(t *testing.T) {
	good := `{"system_version": "1.2.3", "extra": true, "artifacts": [
		{"name": "a", "version": "1", "kind": "zone", "target": "a.bin", "note": "unknown fields are fine"},
		{"name": "a", "version": "2", "kind": "zone", "target": "a2.bin"}]}`
	m, err := tuf.ParseManifest([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if m.SystemVersion != "1.2.3" || len(m.Artifacts) != 2 || m.Artifacts[1].Target != "a2.bin" {
		t.Fatalf("got %+v", m)
	}
	if m, err := tuf.ParseManifest([]byte(`{"system_version": "1", "artifacts": []}`)); err != nil || len(m.Artifacts) != 0 {
		t.Fatalf("empty artifacts: %v", err)
	}

	bad := map[string]string{
		"not json":               `{"system_version"`,
		"not an object":          `[1, 2]`,
		"no system_version":      `{"artifacts": []}`,
		"empty system_version":   `{"system_version": "", "artifacts": []}`,
		"null system_version":    `{"system_version": null, "artifacts": []}`,
		"no artifacts":           `{"system_version": "1"}`,
		"artifacts not an array": `{"system_version": "1", "artifacts": {}}`,
		"null artifact":          `{"system_version": "1", "artifacts": [null]}`,
		"no name":                `{"system_version": "1", "artifacts": [{"version": "1", "kind": "k", "target": "t"}]}`,
		"no version":             `{"system_version": "1", "artifacts": [{"name": "n", "kind": "k", "target": "t"}]}`,
		"no kind":                `{"system_version": "1", "artifacts": [{"name": "n", "version": "1", "target": "t"}]}`,
		"no target":              `{"system_version": "1", "artifacts": [{"name": "n", "version": "1", "kind": "k"}]}`,
		"empty target":           `{"system_version": "1", "artifacts": [{"name": "n", "version": "1", "kind": "k", "target": ""}]}`,
		"number name":            `{"system_version": "1", "artifacts": [{"name": 5, "version": "1", "kind": "k", "target": "t"}]}`,
		"duplicate": `{"system_version": "1", "artifacts": [{"name": "n", "version": "1", "kind": "k", "target": "t"},
			{"name": "n", "version": "1", "kind": "k", "target": "u"}]}`,
		"trailing data": `{"system_version": "1", "artifacts": []} {}`,
		"empty":         ``,
	}
	for name, doc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := tuf.ParseManifest([]byte(doc))
			wantCheck(t, err, tuf.CheckManifest, "")
		})
	}
}

func TestRepository_Manifest(t *testing.T) {
	b := newRepo(t)
	m, err := mustOpen(t, b, tuftest.Zip, tuf.Options{}).Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.SystemVersion != "1.0.0" || len(m.Artifacts) != 2 {
		t.Fatalf("got %+v", m)
	}
	host := m.Artifacts[1]
	if host.Length != 4000 || host.SHA256 == [32]byte{} {
		t.Errorf("host artifact not resolved: %+v", host)
	}
	// The caller's copy is the caller's.
	m.Artifacts[0].Name = "changed"
	repo := mustOpen(t, b, tuftest.Zip, tuf.Options{})
	m1, _ := repo.Manifest()
	m1.Artifacts[0].Name = "changed"
	if m2, _ := repo.Manifest(); m2.Artifacts[0].Name != "zone" {
		t.Error("Manifest returned shared state")
	}
}

func TestRepository_Manifest_None(t *testing.T) {
	b := tuftest.NewBuilder(t)
	b.AddTarget("x.bin", []byte("x"))
	_, err := mustOpen(t, b, tuftest.TarGz, tuf.Options{}).Manifest()
	if !errors.Is(err, tuf.ErrNoManifest) {
		t.Fatalf("got %v, want ErrNoManifest", err)
	}
}

func TestRepository_Manifest_Invalid(t *testing.T) {
	cases := map[string]struct {
		arts    []tuftest.Artifact
		mention string
	}{
		"missing target": {[]tuftest.Artifact{{Name: "a", Version: "1", Kind: "zone", Target: "nope.bin"}}, "nope.bin"},
		"same kind and hash": {[]tuftest.Artifact{
			{Name: "a", Version: "1", Kind: "zone", Target: "zone.bin"},
			{Name: "b", Version: "1", Kind: "zone", Target: "zone-copy.bin"}}, "sha256"},
		"duplicate": {[]tuftest.Artifact{
			{Name: "a", Version: "1", Kind: "zone", Target: "zone.bin"},
			{Name: "a", Version: "1", Kind: "zone", Target: "images/host.img"}}, "both"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := newRepo(t)
			b.AddTarget("zone-copy.bin", []byte("zone image"))
			b.SetManifest("1.0.0", c.arts)
			for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarZst} {
				repo := mustOpen(t, b, f, tuf.Options{}) // Open itself succeeds
				_, err := repo.Manifest()
				te := wantCheck(t, err, tuf.CheckManifest, "")
				if !strings.Contains(err.Error(), c.mention) || !strings.Contains(te.Entry, "artifacts.json") {
					t.Errorf("error %q should mention %q and the artifacts.json entry", err, c.mention)
				}
			}
		})
	}
	t.Run("malformed", func(t *testing.T) {
		b := newRepo(t)
		b.AddTarget("artifacts.json", []byte(`{"system_version": 1}`))
		_, err := mustOpen(t, b, tuftest.Tar, tuf.Options{}).Manifest()
		wantCheck(t, err, tuf.CheckManifest, "")
	})
	t.Run("over the cap", func(t *testing.T) {
		b := newRepo(t)
		b.AddTarget("artifacts.json", append([]byte(`{"system_version": "1", "artifacts": []}`), bytes.Repeat([]byte(" "), 5000)...))
		opts := tuf.Options{Limits: tuf.Limits{MaxMetadataSize: 4096}}
		for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarGz} {
			_, err := mustOpen(t, b, f, opts).Manifest()
			wantCheck(t, err, tuf.CheckManifest, "")
		}
	})
}

func TestRepository_Manifest_Tampered(t *testing.T) {
	// artifacts.json is read at Open, so a tampered one fails Open.
	b := newRepo(t)
	b.EditFiles(editFile(".artifacts.json", func(d []byte) []byte {
		return bytes.Replace(d, []byte(`"1.0.0"`), []byte(`"6.6.6"`), 1)
	}))
	for _, f := range tuftest.Formats {
		wantOpenFails(t, b.Archive(f), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckHash, "targets", "artifacts.json")
	}
}
