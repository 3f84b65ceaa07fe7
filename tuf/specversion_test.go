package tuf_test

import (
	"errors"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// setSpecVersion returns an EditSigned function that sets spec_version.
func setSpecVersion(v string) func(md any) {
	return func(md any) {
		switch m := md.(type) {
		case *metadata.Metadata[metadata.RootType]:
			m.Signed.SpecVersion = v
		case *metadata.Metadata[metadata.TimestampType]:
			m.Signed.SpecVersion = v
		case *metadata.Metadata[metadata.SnapshotType]:
			m.Signed.SpecVersion = v
		case *metadata.Metadata[metadata.TargetsType]:
			m.Signed.SpecVersion = v
		}
	}
}

// TestSpecVersion_RolesRefused: python-tuf refuses metadata whose
// spec_version major is not 1 (or that does not parse); so does Open,
// naming the role, for every role including delegated ones and a root
// later in the chain.
func TestSpecVersion_RolesRefused(t *testing.T) {
	for _, role := range []string{tuftest.Timestamp, tuftest.Snapshot, tuftest.Targets, "zones"} {
		for _, v := range []string{"2.0.0", "0.9", "1", "1.0.0.0", "1.x.0", ""} {
			t.Run(role+"/"+v, func(t *testing.T) {
				b := newRepo(t)
				b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{Paths: []string{"zones/*"}})
				b.AddTargetTo("zones", "zones/a.bin", []byte("a"))
				b.EditSigned(role, setSpecVersion(v))
				wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSpecVersion, role, "spec_version")
			})
		}
	}
	t.Run("rotated root", func(t *testing.T) {
		b := newRepo(t)
		b.RotateRoot(tuftest.RotateOptions{})
		b.EditSigned(tuftest.Root, setSpecVersion("2.0.0"))
		wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSpecVersion, tuftest.Root, "2.0.0")
	})
}

// TestSpecVersion_Accepted: 1.x in either form passes.
func TestSpecVersion_Accepted(t *testing.T) {
	for _, v := range []string{"1.0", "1.0.31", "1.20.0"} {
		b := newRepo(t)
		for _, role := range []string{tuftest.Root, tuftest.Timestamp, tuftest.Snapshot, tuftest.Targets} {
			b.EditSigned(role, setSpecVersion(v))
		}
		mustOpen(t, b, tuftest.Zip, tuf.Options{})
	}
}

// TestSpecVersion_TrustedRoot: a root.json with spec_version 2.x is not
// accepted as a trusted root, nor used as one.
func TestSpecVersion_TrustedRoot(t *testing.T) {
	b := newRepo(t)
	b.EditSigned(tuftest.Root, setSpecVersion("2.0.0"))
	root := b.RootJSON()
	_, err := tuf.CheckRootDocument(root)
	var te *tuf.Error
	if !errors.As(err, &te) || te.Check != tuf.CheckSpecVersion || te.Role != tuftest.Root || !errors.Is(err, tuf.ErrInvalid) {
		t.Fatalf("CheckRootDocument = %v, want a spec_version error on role root", err)
	}
	wantOpenFails(t, b.Zip(), [][]byte{root}, tuf.Options{}, tuf.CheckSpecVersion, tuftest.Root)
}
