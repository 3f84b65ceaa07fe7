package tuf_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/zip"

	"depot/tuf"
	"depot/tuf/tuftest"
)

const fakeRepo = "testdata/tufaceous-v1-fake.zip"

// openFake opens the tufaceous-built fixture with its own root.
func openFake(t testing.TB) *tuf.Repository {
	t.Helper()
	data, err := os.ReadFile(fakeRepo)
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
	root, _ := io.ReadAll(rc)
	rc.Close()
	repo, err := open(t, data, [][]byte{root}, tuf.Options{AllowExpired: true})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestOpen_TufaceousFixture_ExpiredWithoutAllowExpired(t *testing.T) {
	data, err := os.ReadFile(fakeRepo)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	rc, _ := zr.Open("repo/metadata/1.root.json")
	root, _ := io.ReadAll(rc)
	rc.Close()
	_, err = open(t, data, [][]byte{root}, tuf.Options{})
	wantCheck(t, err, tuf.CheckExpiry, "")
}

// TestSplitComposite_TufaceousFixture splits every composite of the real
// repository and reads every Hubris caboose in it.
func TestSplitComposite_TufaceousFixture(t *testing.T) {
	repo := openFake(t)
	m, err := repo.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != tuf.FormatV1 || m.SystemVersion != "1.0.0" || len(m.Artifacts) != 14 {
		t.Fatalf("manifest = %+v", m)
	}
	kindOf := map[string]string{}
	for _, a := range m.Artifacts {
		kindOf[a.Target] = a.Kind
	}
	parts := map[string]string{} // derived kind (+zone name) -> sha256
	boards := map[string]tuf.Caboose{}
	err = repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
		kind := kindOf[tg.Path]
		switch {
		case tuf.IsComposite(kind):
			return tuf.SplitComposite(context.Background(), kind, body, tuf.Limits{}, func(pb *tuf.PartBody) error {
				data, err := io.ReadAll(pb)
				if err != nil {
					return err
				}
				p, err := pb.Part()
				if err != nil {
					return err
				}
				if p.Size != int64(len(data)) {
					t.Errorf("%s: size %d, read %d", p.Path, p.Size, len(data))
				}
				sum := sha256.Sum256(data)
				key := p.Kind
				if p.Kind == tuf.KindZone {
					key += ":" + p.Name + "@" + p.Version
				}
				parts[key] = hex.EncodeToString(sum[:])
				if strings.HasSuffix(p.Path, ".zip") {
					c, err := tuf.ReadHubrisCaboose(bytes.NewReader(data), int64(len(data)))
					if err != nil {
						t.Errorf("%s %s: %v", kind, p.Path, err)
					}
					boards[p.Kind] = c
				}
				return nil
			})
		case strings.HasSuffix(kind, "_sp") || strings.HasSuffix(kind, "_bootloader"):
			data, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			c, err := tuf.ReadHubrisCaboose(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Errorf("%s: %v", kind, err)
			}
			boards[kind] = c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"gimlet_host_phase_1", "cosmo_host_phase_1", "host_phase_2",
		"gimlet_trampoline_phase_1", "cosmo_trampoline_phase_1", "trampoline_phase_2",
		"gimlet_rot_image_a", "gimlet_rot_image_b", "psc_rot_image_a", "psc_rot_image_b",
		"switch_rot_image_a", "switch_rot_image_b", "zone:zone-1@1.0.0", "zone:zone-2@1.0.0",
	} {
		if parts[k] == "" {
			t.Errorf("part %s missing (got %v)", k, parts)
		}
	}
	if len(parts) != 14 {
		t.Errorf("got %d parts, want 14: %v", len(parts), parts)
	}
	// Known contents (sha256sum of the files unpacked with tar).
	if parts["trampoline_phase_2"] != "a5dfcc4bc69b791f1c509df499e9e72cce844cb2b53a56d8bb357b264bdf13b6" ||
		parts["zone:zone-1@1.0.0"] != "d3be131aec5d7a3c9f2c52f8f77f4113b97b22fbf538cf21cfd972be64689b31" ||
		parts["switch_rot_image_a"] != "32307d6d75c9707e8499ba4a4d379f99c0358237b6e190ff6a8024b470f62342" {
		t.Errorf("part hashes differ from the unpacked files: %v", parts)
	}
	for _, k := range []string{"gimlet_sp", "psc_sp", "switch_sp", "gimlet_rot_bootloader", "psc_rot_bootloader",
		"switch_rot_bootloader", "gimlet_rot_image_a", "psc_rot_image_b", "switch_rot_image_a"} {
		if boards[k].Board == "" {
			t.Errorf("%s: no board read (%+v)", k, boards[k])
		}
	}
	if c := boards["gimlet_rot_image_a"]; c.Board != "SimRot" || c.Sign != "sign-gimlet" || !c.HasSign || c.Version != "1.0.0" {
		t.Errorf("gimlet RoT caboose = %+v", c)
	}
	if c := boards["gimlet_sp"]; c.Board != "SimGimletSp" || c.Lab() {
		t.Errorf("gimlet SP caboose = %+v", c)
	}
}

func TestReadHubrisCaboose(t *testing.T) {
	data := tuftest.HubrisArchive(t, "gimlet-d", "gimlet-d", "", "1.2.3", 1)
	c, err := tuf.ReadHubrisCaboose(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Board != "gimlet-d" || c.HasSign || c.Version != "1.2.3" || c.Lab() {
		t.Fatalf("caboose = %+v", c)
	}
	data = tuftest.HubrisArchive(t, "oxide-rot-1", "oxide-rot-1-selfsigned", "abc123", "1.0.0", 1)
	c, err = tuf.ReadHubrisCaboose(bytes.NewReader(data), int64(len(data)))
	if err != nil || c.Sign != "abc123" || !c.Lab() {
		t.Fatalf("caboose = %+v, %v", c, err)
	}
}

func TestReadHubrisCaboose_Invalid(t *testing.T) {
	good := tuftest.HubrisELF("b", "b", "", "1", 0)
	zipOf := func(name string, elf []byte) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create(name)
		w.Write(elf)
		zw.Close()
		return buf.Bytes()
	}
	edit := func(fn func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		fn(b)
		return zipOf("img/final.elf", b)
	}
	cases := map[string][]byte{
		"not a zip":       []byte("not a zip at all"),
		"no final.elf":    zipOf("img/other.elf", good),
		"not an ELF":      edit(func(b []byte) { b[0] = 0 }),
		"no header magic": edit(func(b []byte) { b[84+0x298] ^= 0xff }),
		"caboose length beyond image": edit(func(b []byte) {
			b[84+0x3ff] = 0x7f
		}),
		"no caboose magic": edit(func(b []byte) { b[84+0x300] ^= 0xff }),
		"bad body checksum": edit(func(b []byte) {
			i := bytes.Index(b, []byte("BORD"))
			b[i+12] ^= 0xff
		}),
		"no BORD": zipOf("img/final.elf", func() []byte {
			b := append([]byte(nil), good...)
			i := bytes.Index(b, []byte("BORD"))
			b[i] = 'X' // header checksum fails: TLV-C ends before BORD
			return b
		}()),
		"segment past the end": edit(func(b []byte) { b[52+16] = 0xff; b[52+17] = 0xff }),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := tuf.ReadHubrisCaboose(bytes.NewReader(data), int64(len(data)))
			wantCheck(t, err, tuf.CheckHubris, "")
		})
	}
}

// split runs SplitComposite, reading every part; it returns the parts.
func split(kind string, data []byte, lim tuf.Limits) ([]tuf.Part, error) {
	var parts []tuf.Part
	err := tuf.SplitComposite(context.Background(), kind, bytes.NewReader(data), lim, func(pb *tuf.PartBody) error {
		if _, err := io.Copy(io.Discard, pb); err != nil {
			return err
		}
		p, err := pb.Part()
		if err != nil {
			return err
		}
		parts = append(parts, p)
		return nil
	})
	return parts, err
}

func TestSplitComposite(t *testing.T) {
	host := tuftest.Composite(t, "os",
		tuftest.Entry{Name: "image/", Type: tuftest.Dir},
		tuftest.Entry{Name: "image/gimlet.rom", Data: []byte("gimlet")},
		tuftest.Entry{Name: "image/cosmo.rom", Data: []byte("cosmo")},
		tuftest.Entry{Name: "image/zfs.img", Data: []byte("zfs")},
		tuftest.Entry{Name: "README", Data: []byte("skipped")})
	parts, err := split(tuf.KindHost, host, tuf.Limits{})
	if err != nil || len(parts) != 3 || parts[2].Kind != "host_phase_2" || parts[2].Size != 3 {
		t.Fatalf("host: %+v, %v", parts, err)
	}
	// One board's phase 1 is enough; phase 2 is not optional.
	gimletOnly := tuftest.Composite(t, "os",
		tuftest.Entry{Name: "image/gimlet.rom", Data: []byte("gimlet")},
		tuftest.Entry{Name: "image/zfs.img", Data: []byte("zfs")})
	if parts, err := split(tuf.KindTrampoline, gimletOnly, tuf.Limits{}); err != nil || len(parts) != 2 || parts[0].Kind != "gimlet_trampoline_phase_1" {
		t.Fatalf("gimlet-only trampoline: %+v, %v", parts, err)
	}
	noPhase2 := tuftest.Composite(t, "os", tuftest.Entry{Name: "image/gimlet.rom", Data: []byte("gimlet")})
	if _, err := split(tuf.KindHost, noPhase2, tuf.Limits{}); err == nil || !strings.Contains(err.Error(), "zfs.img") {
		t.Fatalf("host without phase 2: %v", err)
	}
	cp := tuftest.Composite(t, "control_plane",
		tuftest.Entry{Name: "zones/nexus.tar.gz", Data: tuftest.Zone(t, "nexus", "1.2.3+git")},
		tuftest.Entry{Name: "zones/linked.tar.gz", Data: tuftest.Zone(t, "linked", "1",
			tuftest.Entry{Name: "root/bin/", Type: tuftest.Dir},
			tuftest.Entry{Name: "root/bin/sh", Data: []byte("sh")},
			tuftest.Entry{Name: "root/bin/bash", Type: tuftest.Symlink, Linkname: "sh"},
			tuftest.Entry{Name: "root/usr/bin", Type: tuftest.Symlink, Linkname: "../bin"})})
	parts, err = split(tuf.KindControlPlane, cp, tuf.Limits{})
	if err != nil || len(parts) != 2 || parts[0].Name != "nexus" || parts[0].Version != "1.2.3+git" || parts[1].Name != "linked" {
		t.Fatalf("control plane: %+v, %v", parts, err)
	}
}

// zoneBomb is a zone tarball whose one file declares 10 GiB and whose gzip
// stream (about 1 MiB) expands to about 1 GiB of zeros before it ends.
func zoneBomb(t testing.TB) []byte { return tuftest.GzipBomb(t, "root/fake", 10<<30, 1<<20) }

func TestSplitComposite_Hostile(t *testing.T) {
	rot := func(entries ...tuftest.Entry) []byte { return tuftest.Composite(t, "rot", entries...) }
	a := tuftest.Entry{Name: "archive-a.zip", Data: []byte("a")}
	b := tuftest.Entry{Name: "archive-b.zip", Data: []byte("b")}
	truncated := tuftest.Composite(t, "os", tuftest.Entry{Name: "image/zfs.img", Data: bytes.Repeat([]byte("z"), 5000)})
	truncated = truncated[:len(truncated)/2]
	zoneWith := func(entries ...tuftest.Entry) []byte {
		return tuftest.Composite(t, "control_plane", tuftest.Entry{Name: "zones/z.tar.gz", Data: tuftest.Zone(t, "z", "1", entries...)})
	}
	cases := []struct {
		name, kind string
		data       []byte
		lim        tuf.Limits
		mention    string
	}{
		{"nested traversal", tuf.KindGimletRot, rot(a, b, tuftest.Entry{Name: "image/../../etc/passwd", Data: []byte("x")}), tuf.Limits{}, ".."},
		{"traversal in a zone", tuf.KindControlPlane, zoneWith(tuftest.Entry{Name: "root/../../x", Data: []byte("x")}), tuf.Limits{}, "escapes"},
		{"absolute name", tuf.KindGimletRot, rot(a, b, tuftest.Entry{Name: "/etc/passwd", Data: []byte("x")}), tuf.Limits{}, "absolute"},
		{"symlink in the composite", tuf.KindGimletRot, rot(a, tuftest.Entry{Name: "archive-b.zip", Type: tuftest.Symlink, Linkname: "/etc/shadow"}), tuf.Limits{}, "regular"},
		{"hard link in a zone", tuf.KindControlPlane, zoneWith(tuftest.Entry{Name: "root/x", Data: []byte("x")},
			tuftest.Entry{Name: "root/y", Type: tuftest.Hardlink, Linkname: "root/x"}), tuf.Limits{}, "hard link"},
		{"symlink leaving a zone", tuf.KindControlPlane, zoneWith(tuftest.Entry{Name: "root/etc", Type: tuftest.Symlink, Linkname: "../../../etc"}), tuf.Limits{}, "link"},
		{"absolute symlink in a zone", tuf.KindControlPlane, zoneWith(tuftest.Entry{Name: "root/etc", Type: tuftest.Symlink, Linkname: "/etc"}), tuf.Limits{}, "link"},
		{"entry below a symlink in a zone", tuf.KindControlPlane, zoneWith(
			tuftest.Entry{Name: "root/a", Type: tuftest.Symlink, Linkname: ".."},
			tuftest.Entry{Name: "root/a/b", Type: tuftest.Symlink, Linkname: ".."}), tuf.Limits{}, "below the symbolic link"},
		{"fifo in a zone", tuf.KindControlPlane, zoneWith(tuftest.Entry{Name: "root/p", Type: tuftest.Fifo}), tuf.Limits{}, "type"},
		{"10 GiB zone in a 1 MiB gzip", tuf.KindControlPlane, tuftest.Composite(t, "control_plane",
			tuftest.Entry{Name: "zones/bomb.tar.gz", Data: zoneBomb(t)}), tuf.Limits{}, "compression ratio"},
		{"oxide.json of the wrong type", tuf.KindGimletRot, tuftest.Composite(t, "os", a, b), tuf.Limits{}, `"os"`},
		{"oxide.json not JSON", tuf.KindHost, tuftest.Archive(t, tuftest.TarGz, []tuftest.Entry{{Name: "oxide.json", Data: []byte("{")}}), tuf.Limits{}, "JSON"},
		{"no oxide.json", tuf.KindGimletRot, tuftest.Archive(t, tuftest.TarGz, []tuftest.Entry{a, b}), tuf.Limits{}, "oxide.json"},
		{"zone oxide.json of the wrong type", tuf.KindControlPlane, tuftest.Composite(t, "control_plane",
			tuftest.Entry{Name: "zones/z.tar.gz", Data: tuftest.Composite(t, "os", tuftest.Entry{Name: "x", Data: []byte("x")})}), tuf.Limits{}, "layer"},
		{"zone without oxide.json", tuf.KindControlPlane, tuftest.Composite(t, "control_plane",
			tuftest.Entry{Name: "zones/z.tar.gz", Data: tuftest.Archive(t, tuftest.TarGz, []tuftest.Entry{{Name: "x", Data: []byte("x")}})}), tuf.Limits{}, "oxide.json"},
		{"zone not gzip", tuf.KindControlPlane, tuftest.Composite(t, "control_plane", tuftest.Entry{Name: "zones/z.tar.gz", Data: []byte("plain")}), tuf.Limits{}, "gzip"},
		{"missing part", tuf.KindGimletRot, rot(a), tuf.Limits{}, "archive-b.zip"},
		{"duplicate part", tuf.KindGimletRot, rot(a, b, a), tuf.Limits{}, "duplicate"},
		{"no zones", tuf.KindControlPlane, tuftest.Composite(t, "control_plane"), tuf.Limits{}, "zones"},
		{"too many entries", tuf.KindGimletRot, rot(a, b, tuftest.Entry{Name: "c", Data: nil}), tuf.Limits{MaxEntries: 3}, "entries"},
		{"declared size over the cap", tuf.KindGimletRot, rot(a, b, tuftest.Entry{Name: "big", Data: make([]byte, 5000)}), tuf.Limits{MaxExpandedSize: 4096}, "4096"},
		{"not gzip", tuf.KindHost, []byte("not a tarball"), tuf.Limits{}, "gzip"},
		{"truncated", tuf.KindHost, truncated, tuf.Limits{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := split(c.kind, c.data, c.lim)
			te := wantCheck(t, err, tuf.CheckComposite, "")
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q should mention %q", err, c.mention)
			}
			_ = te
		})
	}
}

func TestSplitComposite_CallbackError(t *testing.T) {
	cp := tuftest.Composite(t, "control_plane", tuftest.Entry{Name: "zones/z.tar.gz", Data: tuftest.Zone(t, "z", "1")})
	boom := errors.New("store full")
	err := tuf.SplitComposite(context.Background(), tuf.KindControlPlane, bytes.NewReader(cp), tuf.Limits{}, func(pb *tuf.PartBody) error {
		io.CopyN(io.Discard, pb, 10)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the callback's error", err)
	}
}

func TestParseManifestV2(t *testing.T) {
	doc := tuftest.ManifestV2JSON("2.0.0", []tuftest.ArtifactV2{
		{TargetName: "zone-nexus.tar.gz", Version: "2.0.0", Tags: map[string]string{"kind": "zone", "zone_name": "nexus"}},
		{TargetName: "cosmo.rom", Version: "2.0.0", Tags: map[string]string{"kind": "os_phase_1", "os_board": "cosmo", "os_variant": "recovery"}},
		{TargetName: "rot-a.zip", Version: "1.0.5", Tags: map[string]string{"kind": "rot", "rot_board": "oxide-rot-1", "rot_slot": "a", "rot_rkth": "ab"}},
		{TargetName: "future.bin", Version: "1", Tags: map[string]string{"kind": "future_thing", "x": "y"}},
	})
	m, err := tuf.ParseManifestV2(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, kind string }{{"nexus", "zone"}, {"cosmo.rom", "cosmo_trampoline_phase_1"}, {"rot-a.zip", "rot_image_a"}, {"future.bin", "future_thing"}}
	for i, w := range want {
		if a := m.Artifacts[i]; a.Name != w.name || a.Kind != w.kind {
			t.Errorf("artifact %d = %+v, want %v", i, a, w)
		}
	}
	if m.Artifacts[2].Tags["rot_rkth"] != "ab" || m.Format != tuf.FormatV2 {
		t.Errorf("tags not kept: %+v", m)
	}
	for name, doc := range map[string]string{
		"no system_version": `{"artifacts": []}`,
		"no kind tag":       `{"system_version": "1", "artifacts": [{"target_name": "t", "version": "1", "tags": {}}]}`,
		"no target":         `{"system_version": "1", "artifacts": [{"version": "1", "tags": {"kind": "zone"}}]}`,
		"tag not a string":  `{"system_version": "1", "artifacts": [{"target_name": "t", "version": "1", "tags": {"kind": 1}}]}`,
		"duplicate": `{"system_version": "1", "artifacts": [{"target_name": "t", "version": "1", "tags": {"kind": "k"}},
			{"target_name": "t", "version": "1", "tags": {"kind": "k"}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tuf.ParseManifestV2([]byte(doc))
			wantCheck(t, err, tuf.CheckManifest, "")
		})
	}
}

func TestRepository_ManifestV2(t *testing.T) {
	b := tuftest.NewBuilder(t)
	b.AddTarget("sp.zip", []byte("sp"))
	b.SetManifestV2("3.0.0", []tuftest.ArtifactV2{{TargetName: "sp.zip", Version: "3.0.0", Tags: map[string]string{"kind": "sp", "sp_board": "gimlet-e"}}})
	for _, f := range tuftest.Formats {
		m, err := mustOpen(t, b, f, tuf.Options{}).Manifest()
		if err != nil || m.Format != tuf.FormatV2 || m.Artifacts[0].Length != 2 || m.Artifacts[0].Tags["sp_board"] != "gimlet-e" {
			t.Fatalf("%s: %+v, %v", f, m, err)
		}
	}
}
