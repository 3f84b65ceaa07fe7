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

// FuzzSplitComposite feeds mutated composites (and the zones inside them)
// to SplitComposite: no panic, no hang, every failure classified, and every
// part it accepts has the length its header declared.
func FuzzSplitComposite(f *testing.F) {
	f.Add(uint8(0), tuftest.Composite(f, "os",
		tuftest.Entry{Name: "image/gimlet.rom", Data: []byte("g")},
		tuftest.Entry{Name: "image/cosmo.rom", Data: []byte("c")},
		tuftest.Entry{Name: "image/zfs.img", Data: []byte("z")}))
	f.Add(uint8(1), tuftest.Composite(f, "rot",
		tuftest.Entry{Name: "archive-a.zip", Data: tuftest.HubrisArchive(f, "b", "b", "s", "1", 1)},
		tuftest.Entry{Name: "archive-b.zip", Data: tuftest.HubrisArchive(f, "b", "b", "s", "1", 2)}))
	f.Add(uint8(2), tuftest.Composite(f, "control_plane",
		tuftest.Entry{Name: "zones/a.tar.gz", Data: tuftest.Zone(f, "a", "1")},
		tuftest.Entry{Name: "zones/b.tar.gz", Data: tuftest.Zone(f, "b", "1",
			tuftest.Entry{Name: "l", Type: tuftest.Symlink, Linkname: "../x"})}))
	kinds := []string{tuf.KindHost, tuf.KindGimletRot, tuf.KindControlPlane, tuf.KindTrampoline}
	lim := tuf.Limits{MaxEntries: 64, MaxExpandedSize: 8 << 20}
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		kind := kinds[int(k)%len(kinds)]
		err := tuf.SplitComposite(context.Background(), kind, bytes.NewReader(data), lim, func(pb *tuf.PartBody) error {
			n, err := io.Copy(io.Discard, pb)
			if err != nil {
				return err
			}
			p, err := pb.Part()
			if err != nil {
				return err
			}
			if n != p.Size {
				t.Fatalf("part %s: read %d bytes, declared %d", p.Path, n, p.Size)
			}
			return nil
		})
		if err != nil && !errors.Is(err, tuf.ErrInvalid) {
			t.Fatalf("unclassified error %v (%T)", err, err)
		}
	})
}

// FuzzReadHubrisCaboose feeds mutated Hubris ELF images (zipped) to the
// caboose reader: no panic, every failure classified, BORD always set.
func FuzzReadHubrisCaboose(f *testing.F) {
	f.Add(tuftest.HubrisELF("gimlet-d", "gimlet-d", "", "1.0.0", 1))
	f.Add(tuftest.HubrisELF("oxide-rot-1", "oxide-rot-1", "0123abcd", "1.0.0", 2))
	f.Fuzz(func(t *testing.T, elf []byte) {
		var buf bytes.Buffer
		zw := tuftest.NewZipWriter(&buf)
		w, _ := zw.Create("img/final.elf")
		w.Write(elf)
		zw.Close()
		c, err := tuf.ReadHubrisCaboose(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			if !errors.Is(err, tuf.ErrInvalid) {
				t.Fatalf("unclassified error %v (%T)", err, err)
			}
			return
		}
		if c.Board == "" {
			t.Fatal("caboose accepted without BORD")
		}
	})
}

// FuzzParseCaboose: TLV-C parsing never panics; what parses has a BORD.
func FuzzParseCaboose(f *testing.F) {
	var good []byte
	good = tuftest.AppendTLVC(good, "BORD", []byte("gimlet-d"))
	good = tuftest.AppendTLVC(good, "SIGN", []byte("abc"))
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := tuf.ParseCaboose(b)
		if err != nil {
			if !errors.Is(err, tuf.ErrInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if c.Board == "" {
			t.Fatal("caboose accepted without BORD")
		}
	})
}

// FuzzParseManifestV2: no panics; accepted artifacts have a kind and target.
func FuzzParseManifestV2(f *testing.F) {
	f.Add(tuftest.ManifestV2JSON("1.0.0", []tuftest.ArtifactV2{{TargetName: "t", Version: "1", Tags: map[string]string{"kind": "zone", "zone_name": "z"}}}))
	f.Add([]byte(`{"system_version": "1", "artifacts": [null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := tuf.ParseManifestV2(data)
		if err != nil {
			if !errors.Is(err, tuf.ErrInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, a := range m.Artifacts {
			if a.Kind == "" || a.Target == "" || a.Name == "" {
				t.Fatalf("accepted artifact %+v", a)
			}
		}
	})
}
