package depot_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zip"

	"depot/depot"
	"depot/store"
	"depot/tuf"
	"depot/tuf/tuftest"
)

// newOxideEnv is a coordinator whose uploads accept expired metadata when
// allowExpired is set (the tufaceous fixture expired in February 2026).
func newOxideEnv(t testing.TB, allowExpired bool) *coordEnv {
	t.Helper()
	return newOxideEnvWith(t, allowExpired, depot.SledOptions{HoldReconciler: true})
}

func newOxideEnvWith(t testing.TB, allowExpired bool, so depot.SledOptions) *coordEnv {
	t.Helper()
	e := &coordEnv{env: newEnv(t, so), dir: t.TempDir()}
	cat, err := depot.OpenCatalog(filepath.Join(e.dir, "catalog.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	coord, err := depot.NewCoordinator(context.Background(), depot.CoordinatorOptions{
		Catalog: cat, Local: e.sled, Spool: e.st, Logger: slog.New(slog.DiscardHandler),
		TUF: tuf.Options{AllowExpired: allowExpired},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sled.StartReconciler()
	e.cat, e.coord = cat, coord
	t.Cleanup(func() { cat.Close() })
	return e
}

// fakeRepo returns the tufaceous fixture and its root.
func fakeRepo(t testing.TB) (archive, root []byte) {
	t.Helper()
	data, err := os.ReadFile("../tuf/testdata/tufaceous-v1-fake.zip")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.Open("repo/metadata/1.root.json")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	root, err = io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data, root
}

func (e *coordEnv) trust(t testing.TB, root []byte) {
	t.Helper()
	if _, _, err := e.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
		t.Fatal(err)
	}
}

// stored lists the local store's artifacts.
func (e *coordEnv) stored(t testing.TB) map[store.Digest]int64 {
	t.Helper()
	infos, err := e.st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[store.Digest]int64{}
	for _, i := range infos {
		out[i.Digest] = i.Size
	}
	return out
}

// wantNothingStored checks that a refused upload left no artifact, no
// temp file and no repository.
func (e *coordEnv) wantNothingStored(t testing.TB, before map[store.Digest]int64, reposBefore int) {
	t.Helper()
	after := e.stored(t)
	for d := range after {
		if _, ok := before[d]; !ok {
			t.Errorf("artifact %s left in the store", d)
		}
	}
	if f := tempFiles(t, e.mirrors); len(f) != 0 {
		t.Errorf("temp files left: %v", f)
	}
	if repos, _ := e.cat.Repos(t.Context()); len(repos) != reposBefore {
		t.Errorf("%d repositories recorded, want %d", len(repos), reposBefore)
	}
}

func TestUpload_TufaceousFixture_SplitsComposites(t *testing.T) {
	e := newOxideEnv(t, true)
	archive, root := fakeRepo(t)
	e.trust(t, root)
	res, err := e.upload(t, archive)
	if err != nil {
		t.Fatal(err)
	}
	repo := res.Repo
	if res.Status != depot.UploadInserted || repo.SystemVersion != "1.0.0" || repo.Format != tuf.FormatV1 {
		t.Fatalf("result = %+v", res)
	}
	byKind := map[string][]depot.RepoArtifact{}
	for _, a := range repo.Artifacts {
		byKind[a.Kind] = append(byKind[a.Kind], a)
	}
	var kinds []string
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	want := []string{
		"cosmo_host_phase_1", "cosmo_trampoline_phase_1", "gimlet_host_phase_1", "gimlet_rot_bootloader",
		"gimlet_rot_image_a", "gimlet_rot_image_b", "gimlet_sp", "gimlet_trampoline_phase_1", "host_phase_2",
		"installinator_document", "measurement_corpus", "psc_rot_bootloader", "psc_rot_image_a", "psc_rot_image_b",
		"psc_sp", "switch_rot_bootloader", "switch_rot_image_a", "switch_rot_image_b", "switch_sp",
		"trampoline_phase_2", "zone",
	}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("kinds = %v\nwant    %v", kinds, want)
	}
	if len(repo.Artifacts) != 22 {
		t.Errorf("%d artifacts, want 22", len(repo.Artifacts))
	}
	zones := byKind["zone"]
	if len(zones) != 2 || zones[0].Name == zones[1].Name || !strings.HasPrefix(zones[0].Name, "zone-") || zones[0].Version != "1.0.0" {
		t.Errorf("zones = %+v", zones)
	}
	for _, z := range zones {
		if z.Source == nil || z.Source.Kind != "control_plane" || z.Source.Name != "fake-control-plane" || !strings.HasPrefix(z.Source.Path, "zones/") {
			t.Errorf("zone source = %+v", z.Source)
		}
	}
	if p := byKind["host_phase_2"][0]; p.Name != "fake-host" || p.Version != "1.0.0" || p.Source == nil || p.Source.Path != "image/zfs.img" || p.Size != 1048576 {
		t.Errorf("host phase 2 = %+v", p)
	}
	for _, k := range []string{"gimlet_sp", "psc_sp", "switch_sp", "gimlet_rot_bootloader", "gimlet_rot_image_a", "switch_rot_image_b"} {
		if a := byKind[k][0]; a.Board == "" {
			t.Errorf("%s: no board", k)
		}
	}
	if a := byKind["gimlet_rot_image_a"][0]; a.Board != "SimRot" || a.Sign != "sign-gimlet" {
		t.Errorf("gimlet RoT A board/sign = %q/%q", a.Board, a.Sign)
	}
	if a := byKind["gimlet_sp"][0]; a.Sign != "" || a.Source != nil {
		t.Errorf("gimlet SP = %+v", a)
	}

	// Every recorded artifact is stored under its hash; composites are not
	// artifacts: neither stored nor in the wanted set (so not replicated).
	stored := e.stored(t)
	w, err := e.cat.Wanted(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range repo.Artifacts {
		if stored[a.Hash] != a.Size {
			t.Errorf("%s %s: stored size %d, recorded %d", a.Kind, a.Name, stored[a.Hash], a.Size)
		}
		b, err := e.st.Open(context.Background(), a.Hash)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(b.File)
		b.File.Close()
		if digest(data) != a.Hash {
			t.Errorf("%s: stored bytes hash to %s", a.Kind, digest(data))
		}
	}
	composites := map[store.Digest]bool{}
	for _, a := range repo.Artifacts {
		if a.Source != nil {
			composites[a.Source.Hash] = true
		}
	}
	if len(composites) != 6 {
		t.Errorf("%d composites named as sources, want 6", len(composites))
	}
	for d := range composites {
		if _, ok := w.Artifacts[d]; ok {
			t.Errorf("composite %s is wanted (would be replicated)", d)
		}
	}
	if len(w.Artifacts) != len(stored) {
		t.Errorf("wanted %d artifacts, store holds %d", len(w.Artifacts), len(stored))
	}
	cfg, err := e.sled.Config()
	if err != nil || len(cfg.Artifacts) != len(w.Artifacts) {
		t.Fatalf("local config = %+v, %v", cfg, err)
	}
	if f := tempFiles(t, e.mirrors); len(f) != 0 {
		t.Errorf("temp files left: %v", f)
	}

	// The catalog keeps what the upload returned; the same archive again
	// changes nothing.
	got, err := e.cat.Repo(t.Context(), "1.0.0")
	if err != nil || len(got.Artifacts) != 22 || got.Artifacts[0].Kind == "" {
		t.Fatalf("catalog repo = %+v, %v", got, err)
	}
	if again, err := e.upload(t, archive); err != nil || again.Status != depot.UploadAlreadyExists {
		t.Fatalf("second upload = %+v, %v", again, err)
	}
}

func TestUpload_TufaceousFixture_ExpiredSaysHow(t *testing.T) {
	e := newOxideEnv(t, false)
	archive, root := fakeRepo(t)
	e.trust(t, root)
	_, err := e.upload(t, archive)
	if !errors.Is(err, depot.ErrRepoInvalid) {
		t.Fatalf("got %v, want ErrRepoInvalid", err)
	}
	for _, m := range []string{"expiry", "--allow-expired", "Nexus", "freeze"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q should mention %q", err, m)
		}
	}
	e.wantNothingStored(t, nil, 0)
}

// v2art is one artifact of a v2 test repository.
type v2art struct {
	target, version string
	data            []byte
	tags            map[string]string
}

func v2Repo(t testing.TB, systemVersion string, arts ...v2art) (archive, root []byte) {
	t.Helper()
	b := tuftest.NewBuilder(t)
	var list []tuftest.ArtifactV2
	for _, a := range arts {
		b.AddTarget(a.target, a.data)
		list = append(list, tuftest.ArtifactV2{TargetName: a.target, Version: a.version, Tags: a.tags})
	}
	b.SetManifestV2(systemVersion, list)
	return b.Archive(tuftest.Zip), b.RootJSON()
}

func tags(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestUpload_V2_TagsRoundTrip(t *testing.T) {
	e := newOxideEnv(t, false)
	archive, root := v2Repo(t, "2.0.0",
		v2art{"gimlet-sp.zip", "1.0.30", []byte("sp image"), tags("kind", "sp", "sp_board", "gimlet-e")},
		v2art{"rot-a.zip", "1.0.5", []byte("rot a"), tags("kind", "rot", "rot_board", "oxide-rot-1", "rot_slot", "a", "rot_rkth", "5c3a")},
		v2art{"nexus.tar.gz", "2.0.0", []byte("nexus zone"), tags("kind", "zone", "zone_name", "nexus")},
		v2art{"zfs.img", "2.0.0", []byte("host phase 2"), tags("kind", "os_phase_2", "os_variant", "host")},
		v2art{"future.bin", "7", []byte("unknown"), tags("kind", "future_thing", "color", "blue")},
	)
	e.trust(t, root)
	res, err := e.upload(t, archive)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.cat.Repo(t.Context(), "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []depot.Repo{res.Repo, got} {
		if r.Format != tuf.FormatV2 || len(r.Artifacts) != 5 {
			t.Fatalf("repo = %+v", r)
		}
		by := map[string]depot.RepoArtifact{}
		for _, a := range r.Artifacts {
			by[a.Kind] = a
		}
		if a := by["sp"]; a.Board != "gimlet-e" || a.Tags["sp_board"] != "gimlet-e" || a.Version != "1.0.30" {
			t.Errorf("sp = %+v", a)
		}
		if a := by["rot_image_a"]; a.Board != "oxide-rot-1" || a.Sign != "5c3a" || a.Tags["rot_slot"] != "a" {
			t.Errorf("rot = %+v", a)
		}
		if a := by["zone"]; a.Name != "nexus" || a.Tags["zone_name"] != "nexus" {
			t.Errorf("zone = %+v", a)
		}
		if a := by["host_phase_2"]; a.Tags["os_variant"] != "host" {
			t.Errorf("host phase 2 = %+v", a)
		}
		if a := by["future_thing"]; a.Tags["color"] != "blue" {
			t.Errorf("unknown kind = %+v", a)
		}
	}
}

func TestUpload_Oxide_KindRules(t *testing.T) {
	p2 := func(target, version string) v2art {
		return v2art{target, version, []byte(target), tags("kind", "os_phase_2", "os_variant", "host")}
	}
	sp := func(target, version, board string) v2art {
		return v2art{target, version, []byte(target), tags("kind", "sp", "sp_board", board)}
	}
	rot := func(target, version, slot, sign string) v2art {
		return v2art{target, version, []byte(target), tags("kind", "rot", "rot_board", "oxide-rot-1", "rot_slot", slot, "rot_rkth", sign)}
	}
	cases := []struct {
		name    string
		arts    []v2art
		mention string
	}{
		{"two hosts", []v2art{p2("a.img", "1"), p2("b.img", "1")}, "at most one host"},
		{"two installinator documents", []v2art{
			{"i1.json", "1", []byte("1"), tags("kind", "installinator_document")},
			{"i2.json", "1", []byte("2"), tags("kind", "installinator_document")}}, "at most one installinator document"},
		{"two zones of a name", []v2art{
			{"z1", "1", []byte("1"), tags("kind", "zone", "zone_name", "nexus")},
			{"z2", "2", []byte("2"), tags("kind", "zone", "zone_name", "nexus")}}, "zone named nexus"},
		{"two SP versions of a kind", []v2art{sp("a.zip", "1", "gimlet-d"), sp("b.zip", "2", "gimlet-e")}, "one SP version per kind"},
		{"two SP images of a board", []v2art{sp("a.zip", "1", "gimlet-d"), sp("b.zip", "1", "gimlet-d")}, "one SP image per kind and board"},
		{"two RoT versions of a SIGN", []v2art{rot("a.zip", "1", "a", "k1"), rot("b.zip", "2", "b", "k1")}, "one RoT version per kind and SIGN"},
		{"bad version", []v2art{p2("a.img", "1.0.0/evil")}, "must match"},
		{"long version", []v2art{p2("a.img", strings.Repeat("1", 64))}, "must match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newOxideEnv(t, false)
			archive, root := v2Repo(t, "1.0.0", c.arts...)
			e.trust(t, root)
			_, err := e.upload(t, archive)
			if !errors.Is(err, depot.ErrRepoInvalid) || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), "kind:") {
				t.Fatalf("got %v, want ErrRepoInvalid naming %q", err, c.mention)
			}
			e.wantNothingStored(t, nil, 0)
		})
	}
	t.Run("RoT versions may differ across SIGNs", func(t *testing.T) {
		e := newOxideEnv(t, false)
		archive, root := v2Repo(t, "1.0.0", rot("a.zip", "1", "a", "staging"), rot("b.zip", "2", "a", "production"))
		e.trust(t, root)
		if _, err := e.upload(t, archive); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUpload_Oxide_Conflicts(t *testing.T) {
	zone := func(data, version string) v2art {
		return v2art{"nexus.tar.gz", version, []byte(data), tags("kind", "zone", "zone_name", "nexus")}
	}
	cases := []struct {
		name    string
		second  v2art
		mention []string
	}{
		{"same name, version and kind, other hash", zone("other bytes", "1.0.0"), []string{"nexus 1.0.0 (kind zone) is recorded with hash", "repository 1.0.0", "(2.0.0)"}},
		{"same kind and hash, other version", zone("nexus bytes", "1.0.1"), []string{"kind zone content", "recorded as nexus 1.0.0 (repository 1.0.0)", "(2.0.0) names it nexus 1.0.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newOxideEnv(t, false)
			b := tuftest.NewBuilder(t)
			e.trust(t, b.RootJSON())
			first := zone("nexus bytes", "1.0.0")
			for i, a := range []v2art{first, c.second} {
				b.AddTarget(a.target, a.data)
				b.SetManifestV2([]string{"1.0.0", "2.0.0"}[i], []tuftest.ArtifactV2{{TargetName: a.target, Version: a.version, Tags: a.tags}})
				before := e.stored(t)
				_, err := e.upload(t, b.Archive(tuftest.Zip))
				if i == 0 {
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				if !errors.Is(err, depot.ErrRepoConflict) {
					t.Fatalf("got %v, want ErrRepoConflict", err)
				}
				for _, m := range c.mention {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q should mention %q", err, m)
					}
				}
				e.wantNothingStored(t, before, 1)
			}
		})
	}
}

// v1Repo is a tufaceous v1 repository of the given artifacts (kind, name,
// target content).
type v1art struct {
	kind, name string
	data       []byte
}

func v1Repo(t testing.TB, systemVersion string, arts ...v1art) (archive, root []byte) {
	t.Helper()
	b := tuftest.NewBuilder(t)
	var list []tuftest.Artifact
	for i, a := range arts {
		target := a.kind + "-" + a.name + "-" + string(rune('a'+i)) + ".tar.gz"
		b.AddTarget(target, a.data)
		list = append(list, tuftest.Artifact{Name: a.name, Version: systemVersion, Kind: a.kind, Target: target})
	}
	b.SetManifest(systemVersion, list)
	return b.Archive(tuftest.Zip), b.RootJSON()
}

func hostComposite(t testing.TB, seed string) []byte {
	return tuftest.Composite(t, "os",
		tuftest.Entry{Name: "image/gimlet.rom", Data: []byte("gimlet " + seed)},
		tuftest.Entry{Name: "image/cosmo.rom", Data: []byte("cosmo " + seed)},
		tuftest.Entry{Name: "image/zfs.img", Data: bytes.Repeat([]byte(seed), 100_000)})
}

func TestUpload_V1_Rules(t *testing.T) {
	e := newOxideEnv(t, false)
	archive, root := v1Repo(t, "1.0.0", v1art{"host", "h1", hostComposite(t, "1")}, v1art{"host", "h2", hostComposite(t, "2")})
	e.trust(t, root)
	_, err := e.upload(t, archive)
	if !errors.Is(err, depot.ErrRepoInvalid) || !strings.Contains(err.Error(), "at most one host per repository") {
		t.Fatalf("got %v", err)
	}
	e.wantNothingStored(t, nil, 0)

	// A lab SP image (NAME differs from BORD) is skipped, as Nexus does.
	archive, root = v1Repo(t, "2.0.0",
		v1art{"gimlet_sp", "sp", tuftest.HubrisArchive(t, "gimlet-e", "gimlet-e", "", "1.0.0", 1)},
		v1art{"gimlet_sp", "sp-lab", tuftest.HubrisArchive(t, "gimlet-e", "gimlet-e-lab", "", "1.0.0", 2)},
		v1art{"gimlet_rot", "rot", tuftest.Composite(t, "rot",
			tuftest.Entry{Name: "archive-a.zip", Data: tuftest.HubrisArchive(t, "oxide-rot-1", "oxide-rot-1", "k1", "1.0.0", 3)},
			tuftest.Entry{Name: "archive-b.zip", Data: tuftest.HubrisArchive(t, "oxide-rot-1", "oxide-rot-1", "k1", "1.0.0", 4)})})
	e.trust(t, root)
	res, err := e.upload(t, archive)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range res.Repo.Artifacts {
		kinds = append(kinds, a.Kind+":"+a.Board+":"+a.Sign)
	}
	sort.Strings(kinds)
	if strings.Join(kinds, " ") != "gimlet_rot_image_a:oxide-rot-1:k1 gimlet_rot_image_b:oxide-rot-1:k1 gimlet_sp:gimlet-e:" {
		t.Errorf("artifacts = %v", kinds)
	}
}

func TestUpload_V1_HostileComposites(t *testing.T) {
	zoneWith := func(entries ...tuftest.Entry) []byte {
		return tuftest.Composite(t, "control_plane",
			tuftest.Entry{Name: "zones/good.tar.gz", Data: tuftest.Zone(t, "good", "1.0.0")},
			tuftest.Entry{Name: "zones/bad.tar.gz", Data: tuftest.Zone(t, "bad", "1.0.0", entries...)})
	}
	cases := []struct {
		name    string
		art     v1art
		mention string
	}{
		{"nested traversal", v1art{"host", "h", tuftest.Composite(t, "os", tuftest.Entry{Name: "image/../../../etc/passwd", Data: []byte("x")})}, ".."},
		{"link inside a zone tarball", v1art{"control_plane", "cp", zoneWith(tuftest.Entry{Name: "root/x", Data: []byte("x")},
			tuftest.Entry{Name: "root/y", Type: tuftest.Hardlink, Linkname: "root/x"})}, "hard link"},
		{"symlink out of a zone tarball", v1art{"control_plane", "cp", zoneWith(tuftest.Entry{Name: "root/etc", Type: tuftest.Symlink, Linkname: "/etc"})}, "link"},
		{"10 GiB zone declared in a 1 MiB gzip", v1art{"control_plane", "cp", tuftest.Composite(t, "control_plane",
			tuftest.Entry{Name: "zones/good.tar.gz", Data: tuftest.Zone(t, "good", "1.0.0")},
			tuftest.Entry{Name: "zones/bomb.tar.gz", Data: zoneBomb(t)})}, "compression ratio"},
		{"oxide.json of the wrong type", v1art{"host", "h", tuftest.Composite(t, "rot",
			tuftest.Entry{Name: "image/gimlet.rom", Data: []byte("g")})}, `"rot"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newOxideEnv(t, false)
			// A plain artifact first, so staging has begun before the
			// composite fails.
			archive, root := v1Repo(t, "1.0.0", v1art{"measurement_corpus", "corpus", bytes.Repeat([]byte("c"), 5000)}, c.art)
			e.trust(t, root)
			_, err := e.upload(t, archive)
			if !errors.Is(err, depot.ErrRepoInvalid) || !errors.Is(err, tuf.ErrInvalid) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("got %v, want ErrRepoInvalid mentioning %q", err, c.mention)
			}
			var te *tuf.Error
			if !errors.As(err, &te) || te.Check != tuf.CheckComposite {
				t.Errorf("check = %+v, want composite", te)
			}
			e.wantNothingStored(t, nil, 0)
		})
	}
}

// zoneBomb is a zone tarball declaring a 10 GiB file in about 1 MiB of
// gzip (repeated members of compressed zeros).
func zoneBomb(t testing.TB) []byte {
	t.Helper()
	return tuftest.GzipBomb(t, "root/fake", 10<<30, 1<<20)
}

// The plain upload path is unchanged for repositories that are not
// Oxide-shaped: a kind tufaceous does not know is recorded as given.
func TestUpload_NotOxide_Unchanged(t *testing.T) {
	e := newOxideEnv(t, false)
	archive, root := v1Repo(t, "1.0.0", v1art{"blob", "a", []byte("a")}, v1art{"blob", "b", []byte("a")})
	e.trust(t, root)
	if _, err := e.upload(t, archive); err == nil || strings.Contains(err.Error(), "kind:") {
		// Two artifacts of one kind with one content: the manifest's own
		// rule, as before.
		t.Fatalf("got %v, want the manifest's duplicate-content error", err)
	}
	archive, root = v1Repo(t, "1.0.0", v1art{"blob", "a", []byte("a")}, v1art{"blob", "b", []byte("b")})
	e.trust(t, root)
	res, err := e.upload(t, archive)
	if err != nil || res.Repo.Format != "" || len(res.Repo.Artifacts) != 2 || res.Repo.Artifacts[0].Tags != nil {
		t.Fatalf("got %+v, %v", res, err)
	}
}

// A composite whose bytes are not the signed ones: its parts are split and
// staged as it streams, then the composite's hash fails at its end, and
// every part is removed again.
func TestUpload_V1_TamperedComposite(t *testing.T) {
	e := newOxideEnv(t, false)
	b := tuftest.NewBuilder(t)
	b.AddTarget("host.tar.gz", hostComposite(t, "1"))
	b.SetManifest("1.0.0", []tuftest.Artifact{{Name: "host", Version: "1.0.0", Kind: "host", Target: "host.tar.gz"}})
	forged := hostComposite(t, "2") // well-formed, not signed
	b.EditFiles(func(es []tuftest.Entry) []tuftest.Entry {
		for i := range es {
			if strings.HasSuffix(es[i].Name, "host.tar.gz") {
				es[i].Data, es[i].Open = forged, nil
			}
		}
		return es
	})
	e.trust(t, b.RootJSON())
	_, err := e.upload(t, b.Archive(tuftest.TarGz))
	var te *tuf.Error
	if !errors.Is(err, depot.ErrRepoInvalid) || !errors.As(err, &te) || (te.Check != tuf.CheckHash && te.Check != tuf.CheckLength) {
		t.Fatalf("got %v, want a hash or length failure", err)
	}
	t.Logf("refused: %v", err)
	e.wantNothingStored(t, nil, 0)
	w, _ := e.cat.Wanted(t.Context())
	if len(w.Artifacts) != 0 {
		t.Errorf("wanted set = %v", w.Artifacts)
	}
}

// Replication sends the parts of an Oxide repository's composites, as
// Nexus serves them, and never the composites.
func TestReplicator_Oxide_PartsNotComposites(t *testing.T) {
	r := newRack(t, 2, 2)
	host := hostComposite(t, "r")
	cp := tuftest.Composite(t, "control_plane",
		tuftest.Entry{Name: "zones/nexus.tar.gz", Data: tuftest.Zone(t, "nexus", "1.0.0")},
		tuftest.Entry{Name: "zones/oximeter.tar.gz", Data: tuftest.Zone(t, "oximeter", "1.0.0")})
	archive, root := v1Repo(t, "1.0.0", v1art{"host", "host", host}, v1art{"control_plane", "cp", cp})
	if _, _, err := r.coord.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
		t.Fatal(err)
	}
	res, err := r.coord.upload(t, archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Repo.Artifacts) != 5 {
		t.Fatalf("artifacts = %+v", res.Repo.Artifacts)
	}
	r.converge(5)
	for url, e := range r.sleds {
		l := listed(t, e.sled)
		for _, a := range res.Repo.Artifacts {
			if l[a.Hash] != 2 {
				t.Errorf("sled %s holds %s %s with %d copies, want 2", url, a.Kind, a.Name, l[a.Hash])
			}
		}
		for _, c := range [][]byte{host, cp} {
			if _, ok := l[digest(c)]; ok {
				t.Errorf("sled %s holds a composite", url)
			}
		}
		if len(l) != 5 {
			t.Errorf("sled %s holds %d artifacts, want the 5 parts", url, len(l))
		}
	}
	if p := r.rep.Progress(res.Repo); p.State != depot.RepoComplete {
		t.Errorf("progress = %+v", p)
	}
}

// An SP image that is not a Hubris archive (or has no caboose) is refused,
// and what was staged for it is removed.
func TestUpload_V1_BadHubrisImage(t *testing.T) {
	for name, data := range map[string][]byte{
		"not a zip":  bytes.Repeat([]byte("not a hubris archive"), 100),
		"no caboose": tuftest.Archive(t, tuftest.Zip, []tuftest.Entry{{Name: "img/final.elf", Data: []byte("\x7fELF")}}),
	} {
		t.Run(name, func(t *testing.T) {
			e := newOxideEnv(t, false)
			archive, root := v1Repo(t, "1.0.0", v1art{"gimlet_sp", "sp", data})
			e.trust(t, root)
			_, err := e.upload(t, archive)
			var te *tuf.Error
			if !errors.Is(err, depot.ErrRepoInvalid) || !errors.As(err, &te) || te.Check != tuf.CheckHubris {
				t.Fatalf("got %v, want ErrRepoInvalid with check hubris", err)
			}
			e.wantNothingStored(t, nil, 0)
		})
	}
}

// The tufaceous fixture on a rack of two more sleds: every sled ends with
// the 22 recorded artifacts and none of the 6 composites.
func TestReplicator_TufaceousFixture_PartsReachEverySled(t *testing.T) {
	r := &rack{t: t, peer: &rackPeer{byURL: map[string]*store.Store{}, corrupt: map[string]bool{}},
		sleds: map[string]*env{}, ids: map[string]string{}, down: map[string]bool{}}
	r.coord = newOxideEnvWith(t, true, depot.SledOptions{HoldReconciler: true, Peer: r.peer})
	r.sleds["http://local:1"] = r.coord.env
	r.peer.byURL["http://local:1"] = r.coord.st
	for i := range 2 {
		url := "http://sled-" + string(rune('a'+i)) + ":1"
		e := newEnv(t, depot.SledOptions{Peer: r.peer})
		r.sleds[url], r.peer.byURL[url] = e, e.st
		if _, err := r.coord.cat.PutSled(t.Context(), depot.SledRecord{ID: "sled-" + string(rune('a'+i)), ControlURL: url, DepotURL: url}, nil); err != nil {
			t.Fatal(err)
		}
	}
	r.rep = depot.NewReplicator(r.coord.coord, depot.ReplicationOptions{
		MinReplication: 2,
		Local:          depot.LocalSled{Sled: r.coord.sled, DepotURL: "http://local:1"},
		LocalStore:     r.coord.st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			return depot.LocalSled{Sled: r.sleds[rec.ControlURL].sled, DepotURL: rec.DepotURL}
		},
		Logger: slog.New(slog.DiscardHandler),
		Seed:   1,
	})
	archive, root := fakeRepo(t)
	r.coord.trust(t, root)
	res, err := r.coord.upload(t, archive)
	if err != nil {
		t.Fatal(err)
	}
	r.converge(5)
	composites := map[store.Digest]bool{}
	for _, a := range res.Repo.Artifacts {
		if a.Source != nil {
			composites[a.Source.Hash] = true
		}
	}
	for url, e := range r.sleds {
		l := listed(t, e.sled)
		for _, a := range res.Repo.Artifacts {
			if l[a.Hash] != 2 {
				t.Errorf("sled %s: %s %s has %d copies, want 2", url, a.Kind, a.Name, l[a.Hash])
			}
		}
		for d := range composites {
			if _, ok := l[d]; ok {
				t.Errorf("sled %s holds composite %s", url, d)
			}
		}
	}
	if p := r.rep.Progress(res.Repo); p.State != depot.RepoComplete || p.InService != 3 {
		t.Errorf("progress = %+v", p)
	}
}
