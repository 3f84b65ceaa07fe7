package tuf_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"depot/tuf"
	"depot/tuf/tuftest"
)

func TestOpen_RoundTrip_FormatsAndKeys(t *testing.T) {
	for _, kt := range []tuftest.KeyType{tuftest.ED25519, tuftest.ECDSA} {
		b := newRepo(t, tuftest.WithKeyType(kt))
		for _, f := range tuftest.Formats {
			t.Run(fmt.Sprintf("%s/%s", kt, f), func(t *testing.T) {
				repo := mustOpen(t, b, f, tuf.Options{})
				checkRepo(t, repo, map[string][]byte{
					"zone.bin":        []byte("zone image"),
					"images/host.img": bytes.Repeat([]byte("host"), 1000),
				})
				if v := repo.RootVersion(); v != 1 {
					t.Errorf("RootVersion = %d, want 1", v)
				}
			})
		}
	}
}

// checkRepo checks the repository holds exactly want (plus artifacts.json),
// that Targets agrees with the content, and that the manifest resolves.
func checkRepo(t *testing.T, repo *tuf.Repository, want map[string][]byte) {
	t.Helper()
	got := readAll(t, repo)
	delete(got, "artifacts.json")
	if len(got) != len(want) {
		t.Errorf("walked %d targets, want %d", len(got), len(want))
	}
	for p, data := range want {
		if !bytes.Equal(got[p], data) {
			t.Errorf("target %q: got %d bytes, want %d", p, len(got[p]), len(data))
		}
	}
	targets := repo.Targets()
	if !slices.IsSortedFunc(targets, func(a, b tuf.Target) int { return strings.Compare(a.Path, b.Path) }) {
		t.Errorf("Targets not sorted: %v", targets)
	}
	for _, tg := range targets {
		if data, ok := want[tg.Path]; ok && (tg.Length != int64(len(data)) || tg.SHA256 != sha256.Sum256(data)) {
			t.Errorf("target %q: length %d sha256 %x disagree with its content", tg.Path, tg.Length, tg.SHA256)
		}
	}
	m, err := repo.Manifest()
	if err != nil {
		if err == tuf.ErrNoManifest {
			return
		}
		t.Fatalf("Manifest: %v", err)
	}
	for _, a := range m.Artifacts {
		if data, ok := want[a.Target]; ok && a.SHA256 != sha256.Sum256(data) {
			t.Errorf("artifact %s: sha256 not resolved", a)
		}
	}
}

func TestOpen_Layouts(t *testing.T) {
	cases := []struct {
		name string
		opts []tuftest.Option
	}{
		{"tufaceous", nil},
		{"plain", []tuftest.Option{tuftest.WithPlainLayout()}},
		{"plain consistent", []tuftest.Option{tuftest.WithPrefix("")}},
		{"prefixed not consistent", []tuftest.Option{tuftest.WithPrefix("myrepo"), tuftest.WithConsistentSnapshot(false)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newRepo(t, c.opts...)
			b.AddTarget("a/b/c.bin", []byte("deep"))
			for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarGz} {
				repo := mustOpen(t, b, f, tuf.Options{})
				checkRepo(t, repo, map[string][]byte{
					"zone.bin":        []byte("zone image"),
					"images/host.img": bytes.Repeat([]byte("host"), 1000),
					"a/b/c.bin":       []byte("deep"),
				})
			}
		})
	}
}

func TestOpen_Layout_ConsistentTargetNames(t *testing.T) {
	b := newRepo(t)
	sum := sha256.Sum256([]byte("zone image"))
	want := "repo/targets/" + hex.EncodeToString(sum[:]) + ".zone.bin"
	found := false
	for _, e := range b.Entries() {
		found = found || e.Name == want
	}
	if !found {
		t.Fatalf("builder wrote no %s", want)
	}
	mustOpen(t, b, tuftest.Zip, tuf.Options{})
}

func TestOpen_Tar_DotSlashNamesAndTargetsFirst(t *testing.T) {
	b := newRepo(t, tuftest.WithPlainLayout())
	b.EditFiles(func(files []tuftest.Entry) []tuftest.Entry {
		// tar -C dir -c . writes "./" names, and nothing orders metadata first.
		out := []tuftest.Entry{{Name: "./", Type: tuftest.Dir}, {Name: "./targets/", Type: tuftest.Dir}}
		for i := len(files) - 1; i >= 0; i-- {
			f := files[i]
			f.Name = "./" + f.Name
			out = append(out, f)
		}
		return out
	})
	for _, f := range []tuftest.Format{tuftest.Tar, tuftest.TarZst, tuftest.Zip} {
		checkRepo(t, mustOpen(t, b, f, tuf.Options{}), map[string][]byte{
			"zone.bin":        []byte("zone image"),
			"images/host.img": bytes.Repeat([]byte("host"), 1000),
		})
	}
}

func TestOpen_IgnoresUnlistedFiles(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(func(files []tuftest.Entry) []tuftest.Entry {
		return append(files,
			tuftest.Entry{Name: "repo/targets/stray.bin", Data: []byte("not signed")},
			tuftest.Entry{Name: "repo/README", Data: []byte("hello")},
			tuftest.Entry{Name: "repo/metadata/notes.txt", Data: []byte("x")},
		)
	})
	repo := mustOpen(t, b, tuftest.Zip, tuf.Options{})
	for _, tg := range repo.Targets() {
		if tg.Path == "stray.bin" {
			t.Fatal("unlisted file became a target")
		}
	}
}

func TestOpen_RootRotation(t *testing.T) {
	b := newRepo(t)
	trusted := b.RootJSON()
	b.RotateRoot(tuftest.RotateOptions{NewRoles: []string{tuftest.Root, tuftest.Timestamp}})
	b.RotateRoot(tuftest.RotateOptions{NewRoles: []string{tuftest.Root, tuftest.Snapshot, tuftest.Targets}})
	for _, f := range []tuftest.Format{tuftest.Zip, tuftest.Tar} {
		repo, err := open(t, b.Archive(f), [][]byte{trusted}, tuf.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if v := repo.RootVersion(); v != 3 {
			t.Errorf("RootVersion = %d, want 3", v)
		}
	}
	// Trusting version 2 directly works too.
	repo, err := open(t, b.Zip(), [][]byte{b.RootVersion(2)}, tuf.Options{})
	if err != nil || repo.RootVersion() != 3 {
		t.Fatalf("from root v2: %v", err)
	}
}

func TestOpen_RootRotation_ExpiredIntermediateRoot(t *testing.T) {
	b := newRepo(t)
	b.ExpireRole(tuftest.Root) // version 1
	b.RotateRoot(tuftest.RotateOptions{NewRoles: []string{tuftest.Root}})
	if _, err := open(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}); err != nil {
		t.Fatalf("only the final root's expiry counts: %v", err)
	}
}

func TestOpen_MultipleTrustedRoots(t *testing.T) {
	b := newRepo(t)
	other := tuftest.NewBuilder(t).RootJSON()
	if _, err := open(t, b.Zip(), [][]byte{other, b.RootJSON()}, tuf.Options{}); err != nil {
		t.Fatalf("second root should verify: %v", err)
	}
	_, err := open(t, b.Zip(), [][]byte{other}, tuf.Options{})
	wantCheck(t, err, tuf.CheckSignature, "timestamp")
	if !strings.Contains(err.Error(), "no trusted root verifies") {
		t.Errorf("error %q does not say no trusted root verifies", err)
	}
}

func TestOpen_MultipleTrustedRoots_MostSpecificFailure(t *testing.T) {
	b := newRepo(t)
	b.ExpireRole(tuftest.Timestamp)
	other := tuftest.NewBuilder(t).RootJSON()
	for _, roots := range [][][]byte{{other, b.RootJSON()}, {b.RootJSON(), other}} {
		_, err := open(t, b.Zip(), roots, tuf.Options{})
		wantCheck(t, err, tuf.CheckExpiry, "timestamp")
	}
}

func TestOpen_TrustedRootUnusable(t *testing.T) {
	b := newRepo(t)
	for name, root := range map[string][]byte{
		"garbage":     []byte("{not json"),
		"not a root":  b.Entries()[1].Data, // timestamp.json
		"not signed":  bytes.Replace(b.RootJSON(), []byte(`"version":1`), []byte(`"version":7`), 1),
		"empty bytes": nil,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := open(t, b.Zip(), [][]byte{root}, tuf.Options{})
			wantCheck(t, err, tuf.CheckRoot, "")
		})
	}
	_, err := open(t, b.Zip(), nil, tuf.Options{})
	wantCheck(t, err, tuf.CheckRoot, "")
}

func TestOpen_Now(t *testing.T) {
	b := newRepo(t)
	later := func() time.Time { return time.Now().Add(2 * 365 * 24 * time.Hour) }
	_, err := open(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{Now: later})
	wantCheck(t, err, tuf.CheckExpiry, "root")
	if _, err := open(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{Now: later, AllowExpired: true}); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_Delegations(t *testing.T) {
	for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarGz} {
		b := newRepo(t)
		b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{Paths: []string{"zones/*"}})
		b.Delegate("zones", "zones-a", tuftest.Delegation{Paths: []string{"zones/a*"}, Terminating: true})
		b.Delegate("zones-a", "zones-a-deep", tuftest.Delegation{Paths: []string{"zones/a-deep*"}})
		b.Delegate(tuftest.Targets, "images", tuftest.Delegation{Paths: []string{"img/*", "img/*/*"}, Keys: []*tuftest.Key{tuftest.GenerateKey(t, tuftest.ECDSA)}})
		b.AddTargetTo("zones", "zones/b.bin", []byte("b"))
		b.AddTargetTo("zones-a", "zones/a.bin", []byte("a"))
		b.AddTargetTo("zones-a-deep", "zones/a-deep.bin", []byte("deep"))
		b.AddTargetTo("images", "img/x/y.img", []byte("y"))
		repo := mustOpen(t, b, f, tuf.Options{})
		checkRepo(t, repo, map[string][]byte{
			"zone.bin":         []byte("zone image"),
			"images/host.img":  bytes.Repeat([]byte("host"), 1000),
			"zones/b.bin":      []byte("b"),
			"zones/a.bin":      []byte("a"),
			"zones/a-deep.bin": []byte("deep"),
			"img/x/y.img":      []byte("y"),
		})
	}
}

func TestOpen_Delegations_PriorityShadowing(t *testing.T) {
	b := newRepo(t)
	b.Delegate(tuftest.Targets, "first", tuftest.Delegation{Paths: []string{"*.bin"}})
	b.Delegate(tuftest.Targets, "second", tuftest.Delegation{Paths: []string{"*.bin"}})
	b.AddTargetTo("first", "x.bin", []byte("from first"))
	b.AddTargetTo("second", "x.bin", []byte("from second"))
	repo := mustOpen(t, b, tuftest.Zip, tuf.Options{})
	if got := readAll(t, repo)["x.bin"]; string(got) != "from first" {
		t.Fatalf("x.bin = %q, want the first delegation's", got)
	}
}

func TestOpen_Delegations_Terminating(t *testing.T) {
	// "stop" is terminating for t/*: "later" is never consulted for t/*.
	build := func(terminating bool) *tuftest.Builder {
		b := newRepo(t)
		b.Delegate(tuftest.Targets, "stop", tuftest.Delegation{Paths: []string{"t/*"}, Terminating: terminating})
		b.Delegate(tuftest.Targets, "later", tuftest.Delegation{Paths: []string{"t/*"}})
		b.AddTargetTo("stop", "t/a", []byte("a"))
		b.AddTargetTo("later", "t/b", []byte("b"))
		return b
	}
	mustOpen(t, build(false), tuftest.Zip, tuf.Options{})
	b := build(true)
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSignature, "later", "t/b")
}

func TestOpen_Delegations_PathHashPrefixes(t *testing.T) {
	b := newRepo(t)
	sum := sha256.Sum256([]byte("hashed.bin"))
	prefix := hex.EncodeToString(sum[:])[:2]
	b.Delegate(tuftest.Targets, "bin", tuftest.Delegation{PathHashPrefixes: []string{prefix}})
	b.AddTargetTo("bin", "hashed.bin", []byte("h"))
	mustOpen(t, b, tuftest.Zip, tuf.Options{})

	b = newRepo(t)
	other := "00"
	if prefix == other {
		other = "11"
	}
	b.Delegate(tuftest.Targets, "bin", tuftest.Delegation{PathHashPrefixes: []string{other}})
	b.AddTargetTo("bin", "hashed.bin", []byte("h"))
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSignature, "bin", "hashed.bin")
}

func TestOpen_Delegations_SuccinctRoles(t *testing.T) {
	b := newRepo(t)
	key := tuftest.GenerateKey(t, tuftest.ED25519)
	b.Delegate(tuftest.Targets, "bin-0", tuftest.Delegation{Keys: []*tuftest.Key{key}})
	b.Delegate(tuftest.Targets, "bin-1", tuftest.Delegation{Keys: []*tuftest.Key{key}})
	b.EditSigned(tuftest.Targets, func(md any) {
		d := md.(*metadata.Metadata[metadata.TargetsType]).Signed.Delegations
		d.Roles = nil
		d.SuccinctRoles = &metadata.SuccinctRoles{KeyIDs: []string{key.ID}, Threshold: 1, BitLength: 1, NamePrefix: "bin"}
	})
	want := map[string][]byte{"zone.bin": []byte("zone image"), "images/host.img": bytes.Repeat([]byte("host"), 1000)}
	for i := range 6 {
		p := fmt.Sprintf("succinct/%d.bin", i)
		sum := sha256.Sum256([]byte(p))
		b.AddTargetTo(fmt.Sprintf("bin-%d", sum[0]>>7), p, []byte(p))
		want[p] = []byte(p)
	}
	checkRepo(t, mustOpen(t, b, tuftest.Zip, tuf.Options{}), want)

	// The same target in the wrong bin is refused.
	p := "succinct/0.bin"
	sum := sha256.Sum256([]byte(p))
	b.AddTargetTo(fmt.Sprintf("bin-%d", 1-sum[0]>>7), p, []byte("impostor"))
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSignature, "", p)
}

func TestOpen_Delegations_Cycle(t *testing.T) {
	b := newRepo(t)
	b.Delegate(tuftest.Targets, "a", tuftest.Delegation{Paths: []string{"*"}})
	b.Delegate("a", "b", tuftest.Delegation{Paths: []string{"*"}})
	keys := b.Keys("a")
	b.EditSigned("b", func(md any) {
		// b delegates back to a: the walk must not loop.
		m := md.(*metadata.Metadata[metadata.TargetsType])
		m.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{keys[0].ID: keys[0].Public},
			Roles: []metadata.DelegatedRole{{Name: "a", KeyIDs: []string{keys[0].ID}, Threshold: 1, Paths: []string{"*"}}}}
	})
	b.AddTargetTo("b", "cyc.bin", []byte("c"))
	mustOpen(t, b, tuftest.Zip, tuf.Options{})
}

func TestOpen_Delegations_UnlistedRoleNeeded(t *testing.T) {
	b := newRepo(t)
	b.Delegate(tuftest.Targets, "ghost", tuftest.Delegation{Paths: []string{"g/*"}})
	b.Delegate(tuftest.Targets, "real", tuftest.Delegation{Paths: []string{"g/*"}})
	b.AddTargetTo("real", "g/x", []byte("x"))
	b.EditSigned(tuftest.Snapshot, func(md any) {
		delete(md.(*metadata.Metadata[metadata.SnapshotType]).Signed.Meta, "ghost.json")
	})
	// Resolving g/x must consult ghost before real, and ghost is missing.
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "ghost", "g/x")

	// A missing role no target needs is harmless.
	b = newRepo(t)
	b.Delegate(tuftest.Targets, "ghost", tuftest.Delegation{Paths: []string{"future/*"}})
	b.EditSigned(tuftest.Snapshot, func(md any) {
		delete(md.(*metadata.Metadata[metadata.SnapshotType]).Signed.Meta, "ghost.json")
	})
	mustOpen(t, b, tuftest.Zip, tuf.Options{})
}

func TestOpen_EmptyRepository(t *testing.T) {
	b := tuftest.NewBuilder(t)
	repo := mustOpen(t, b, tuftest.Zip, tuf.Options{})
	if n := len(repo.Targets()); n != 0 {
		t.Fatalf("%d targets", n)
	}
	if _, err := repo.Manifest(); err != tuf.ErrNoManifest {
		t.Fatalf("Manifest: %v, want ErrNoManifest", err)
	}
	if err := walkErr(repo); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_Delegations_RoleNameNeedsEscaping(t *testing.T) {
	for _, opts := range [][]tuftest.Option{nil, {tuftest.WithPlainLayout()}} {
		b := newRepo(t, opts...)
		b.Delegate(tuftest.Targets, "team/zones", tuftest.Delegation{Paths: []string{"s/*"}})
		b.AddTargetTo("team/zones", "s/x", []byte("x"))
		got := readAll(t, mustOpen(t, b, tuftest.Tar, tuf.Options{}))
		if string(got["s/x"]) != "x" {
			t.Fatalf("s/x = %q", got["s/x"])
		}
	}
}

func TestCheckRootDocument_HostileDocuments(t *testing.T) {
	b := tuftest.NewBuilder(t)
	if v, err := tuf.CheckRootDocument(b.RootJSON()); err != nil || v != 1 {
		t.Fatalf("good root: %d, %v", v, err)
	}
	for _, doc := range []string{``, `{}`, `[]`, `{"signed":{"_type":"root","keys":{"k":null}},"signatures":[]}`,
		`{"signed":{"_type":"targets"},"signatures":[]}`} {
		if _, err := tuf.CheckRootDocument([]byte(doc)); !errors.Is(err, tuf.ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", doc, err)
		}
	}
}
