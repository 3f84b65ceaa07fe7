package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// FuzzOpen feeds mutated archives to Open and WalkTargets: they must never
// panic or hang, and every failure must be a classified repository error.
func FuzzOpen(f *testing.F) {
	b := newRepo(f, tuftest.WithPlainLayout())
	b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{Paths: []string{"zones/*"}})
	b.AddTargetTo("zones", "zones/a.bin", []byte("a"))
	root := b.RootJSON()
	for _, format := range tuftest.Formats {
		f.Add(b.Archive(format))
	}
	f.Add(tuftest.Archive(f, tuftest.Tar, []tuftest.Entry{{Name: "../x", Data: []byte("x")}, {Name: "l", Type: tuftest.Symlink, Linkname: "/"}}))
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	opts := tuf.Options{Limits: tuf.Limits{MaxEntries: 64, MaxExpandedSize: 8 << 20, MaxMetadataSize: 1 << 20, MaxMetadataTotal: 4 << 20}}
	f.Fuzz(func(t *testing.T, data []byte) {
		repo, err := tuf.Open(context.Background(), bytes.NewReader(data), int64(len(data)), [][]byte{root}, opts)
		if err != nil {
			if !errors.Is(err, tuf.ErrInvalid) {
				t.Fatalf("unclassified error %v (%T)", err, err)
			}
			return
		}
		err = repo.WalkTargets(context.Background(), func(_ tuf.Target, body io.Reader) error {
			_, err := io.Copy(io.Discard, body)
			return err
		})
		if err != nil && !errors.Is(err, tuf.ErrInvalid) {
			t.Fatalf("unclassified walk error %v (%T)", err, err)
		}
		if _, err := repo.Manifest(); err != nil && !errors.Is(err, tuf.ErrInvalid) && !errors.Is(err, tuf.ErrNoManifest) {
			t.Fatalf("unclassified manifest error %v", err)
		}
	})
}

// FuzzParseManifest: no panics; what parses survives a round trip.
func FuzzParseManifest(f *testing.F) {
	f.Add(tuftest.ManifestJSON("1.0.0", []tuftest.Artifact{{Name: "a", Version: "1", Kind: "k", Target: "t"}}))
	f.Add([]byte(`{"system_version": "1", "artifacts": [{"name": "n", "version": "1", "kind": "k", "target": "t"}, null]}`))
	f.Add([]byte(`{"system_version": "1", "artifacts": []} x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := tuf.ParseManifest(data)
		if err != nil {
			if !errors.Is(err, tuf.ErrInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		arts := make([]tuftest.Artifact, len(m.Artifacts))
		for i, a := range m.Artifacts {
			arts[i] = tuftest.Artifact{Name: a.Name, Version: a.Version, Kind: a.Kind, Target: a.Target}
		}
		again, err := tuf.ParseManifest(tuftest.ManifestJSON(m.SystemVersion, arts))
		if err != nil || again.SystemVersion != m.SystemVersion || len(again.Artifacts) != len(m.Artifacts) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
