package tuftest_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"strings"
	"testing"

	"depot/tuf/tuftest"
)

func TestBuilder_Entries_Tufaceous(t *testing.T) {
	b := tuftest.NewBuilder(t)
	b.AddTarget("a/b.bin", []byte("x"))
	b.RotateRoot(tuftest.RotateOptions{NewRoles: []string{tuftest.Root}})
	var names []string
	for _, e := range b.Entries() {
		names = append(names, e.Name)
	}
	got := strings.Join(names, "\n")
	for _, want := range []string{"repo/metadata/1.root.json", "repo/metadata/2.root.json", "repo/metadata/timestamp.json",
		"repo/metadata/1.snapshot.json", "repo/metadata/1.targets.json", "repo/targets/a/"} {
		if !strings.Contains(got, want) {
			t.Errorf("entries lack %s:\n%s", want, got)
		}
	}
}

func TestBuilder_Entries_Plain(t *testing.T) {
	b := tuftest.NewBuilder(t, tuftest.WithPlainLayout())
	b.AddTarget("a/b.bin", []byte("x"))
	b.Delegate(tuftest.Targets, "role/with/slashes", tuftest.Delegation{})
	var names []string
	for _, e := range b.Entries() {
		names = append(names, e.Name)
	}
	got := strings.Join(names, "\n")
	for _, want := range []string{"metadata/snapshot.json", "metadata/targets.json", "metadata/role%2Fwith%2Fslashes.json", "targets/a/b.bin"} {
		if !strings.Contains(got, want) {
			t.Errorf("entries lack %s:\n%s", want, got)
		}
	}
}

func TestRandomTarget(t *testing.T) {
	open, sum := tuftest.RandomTarget(7, 100000)
	a, _ := io.ReadAll(open())
	b, _ := io.ReadAll(open())
	if len(a) != 100000 || !bytes.Equal(a, b) || sha256.Sum256(a) != sum {
		t.Fatal("RandomTarget is not deterministic or its sum is wrong")
	}
	if c, _ := io.ReadAll(tuftest.RandomReader(8, 100000)); bytes.Equal(a, c) {
		t.Fatal("seeds do not matter")
	}
}

func TestWriteArchive_Formats(t *testing.T) {
	b := tuftest.NewBuilder(t)
	b.AddTarget("x", []byte("x"))
	for _, f := range tuftest.Formats {
		if len(b.Archive(f)) == 0 {
			t.Errorf("%s: empty archive", f)
		}
	}
	if err := tuftest.WriteArchive(io.Discard, "rar", nil, false); err == nil {
		t.Error("unknown format accepted")
	}
	if err := tuftest.WriteArchive(io.Discard, tuftest.Zip, []tuftest.Entry{{Name: "h", Type: tuftest.Hardlink}}, false); err == nil {
		t.Error("zip hard link accepted")
	}
}
