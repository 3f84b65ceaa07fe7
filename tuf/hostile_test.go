package tuf_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zip"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"depot/tuf"
	"depot/tuf/tuftest"
)

func TestHostile_TamperedTarget(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(editFile(".zone.bin", func(d []byte) []byte { d[0] ^= 1; return d }))
	for _, f := range tuftest.Formats {
		t.Run(string(f), func(t *testing.T) {
			repo := mustOpen(t, b, f, tuf.Options{}) // same length: only streaming can tell
			te := wantCheck(t, walkErr(repo), tuf.CheckHash, "targets")
			if !strings.Contains(te.Entry, "zone.bin") {
				t.Errorf("entry %q does not name zone.bin", te.Entry)
			}
		})
	}
}

func TestHostile_TamperedTarget_ZipBytes(t *testing.T) {
	// Flipping a byte in the archive itself also breaks the zip CRC; the
	// signed hash is what gets reported.
	b := newRepo(t)
	var buf bytes.Buffer
	if err := b.WriteZip(&buf, true); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	i := bytes.Index(data, []byte("zone image"))
	data[i] ^= 1
	repo, err := open(t, data, [][]byte{b.RootJSON()}, tuf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantCheck(t, walkErr(repo), tuf.CheckHash, "targets")
}

func TestHostile_TamperedTargetLength(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(editFile(".zone.bin", func(d []byte) []byte { return append(d, '!') }))
	for _, f := range tuftest.Formats {
		wantOpenFails(t, b.Archive(f), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLength, "targets", "zone.bin")
	}
}

func TestHostile_TamperedMetadata(t *testing.T) {
	tamper := func(d []byte) []byte {
		return bytes.Replace(d, []byte(`"spec_version":"1.0.31"`), []byte(`"spec_version":"1.0.32"`), 1)
	}
	cases := []struct {
		file, check, role string
	}{
		{"timestamp.json", tuf.CheckSignature, "timestamp"}, // nothing hashes the timestamp
		{"snapshot.json", tuf.CheckHash, "snapshot"},        // the timestamp hashes the snapshot
		{"targets.json", tuf.CheckHash, "targets"},          // the snapshot hashes targets
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			b := newRepo(t)
			b.EditFiles(editFile(c.file, tamper))
			wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, c.check, c.role, c.file)
		})
	}
	t.Run("2.root.json", func(t *testing.T) {
		b := newRepo(t)
		b.RotateRoot(tuftest.RotateOptions{NewRoles: []string{tuftest.Root}})
		b.EditFiles(editFile("/2.root.json", tamper))
		wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSignature, "root", "2.root.json")
	})
}

func TestHostile_MalformedMetadata(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(editFile("/timestamp.json", func([]byte) []byte { return []byte(`{"signed": [`) }))
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "timestamp", "malformed")
}

func TestHostile_UnknownKey(t *testing.T) {
	for _, role := range []string{tuftest.Timestamp, tuftest.Snapshot, tuftest.Targets, "zones"} {
		t.Run(role, func(t *testing.T) {
			b := newRepo(t)
			b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{})
			b.SetSigners(role, tuftest.GenerateKey(t, tuftest.ED25519))
			wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSignature, role)
			// AllowExpired skips expiry only.
			wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{AllowExpired: true}, tuf.CheckSignature, role)
		})
	}
}

func TestHostile_BelowThreshold(t *testing.T) {
	for _, role := range []string{tuftest.Root, tuftest.Timestamp, tuftest.Targets, "zones"} {
		t.Run(role, func(t *testing.T) {
			b := newRepo(t)
			b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{})
			first := b.Keys(role)[0]
			b.AddKey(role, tuftest.GenerateKey(t, tuftest.ECDSA))
			b.SetThreshold(role, 2)
			b.SetSigners(role, first)
			roots := [][]byte{b.RootJSON()}
			if role == tuftest.Root {
				// Version 1 is trusted as given; make version 2 the one signed short.
				b = newRepo(t)
				roots = [][]byte{b.RootJSON()}
				b.RotateRoot(tuftest.RotateOptions{})
				first = b.Keys(role)[0]
				b.AddKey(role, tuftest.GenerateKey(t, tuftest.ECDSA))
				b.SetThreshold(role, 2)
				b.SetSigners(role, first)
			}
			wantOpenFails(t, b.Zip(), roots, tuf.Options{}, tuf.CheckThreshold, role)
		})
	}
}

func TestHostile_RotatedRootNotSignedByOld(t *testing.T) {
	b := newRepo(t)
	trusted := b.RootJSON()
	b.RotateRoot(tuftest.RotateOptions{NewRoles: []string{tuftest.Root, tuftest.Timestamp}, SkipOldSignatures: true})
	wantOpenFails(t, b.Zip(), [][]byte{trusted}, tuf.Options{}, tuf.CheckSignature, "root", "2.root.json")
}

func TestHostile_RootChainSkipsVersion(t *testing.T) {
	b := newRepo(t)
	b.RotateRoot(tuftest.RotateOptions{})
	b.RotateRoot(tuftest.RotateOptions{})
	b.EditFiles(func(files []tuftest.Entry) []tuftest.Entry {
		var out []tuftest.Entry
		for _, f := range files {
			switch {
			case strings.HasSuffix(f.Name, "/2.root.json"):
				continue
			case strings.HasSuffix(f.Name, "/3.root.json"):
				f.Name = strings.Replace(f.Name, "3.root.json", "2.root.json", 1)
			}
			out = append(out, f)
		}
		return out
	})
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckVersion, "root")
}

func TestHostile_Expired(t *testing.T) {
	for _, role := range []string{tuftest.Root, tuftest.Timestamp, tuftest.Snapshot, tuftest.Targets, "zones"} {
		t.Run(role, func(t *testing.T) {
			b := newRepo(t)
			b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{Paths: []string{"zones/*"}})
			b.AddTargetTo("zones", "zones/a.bin", []byte("a"))
			b.ExpireRole(role)
			for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarGz} {
				wantOpenFails(t, b.Archive(f), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckExpiry, role, "expired at")
				repo := mustOpen(t, b, f, tuf.Options{AllowExpired: true})
				if got := readAll(t, repo)["zones/a.bin"]; string(got) != "a" {
					t.Errorf("zones/a.bin = %q", got)
				}
			}
		})
	}
}

func TestHostile_DelegatedTargetOutsidePaths(t *testing.T) {
	b := newRepo(t)
	b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{Paths: []string{"zones/*"}})
	b.AddTargetTo("zones", "zones/ok.bin", []byte("ok"))
	b.AddTargetTo("zones", "zone.bin", []byte("hijack")) // shadowed by targets' own zone.bin, but still not zones' to list
	b.AddTargetTo("zones", "evil/x.bin", []byte("evil"))
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSignature, "zones", "outside its delegated paths")
}

func TestHostile_DelegatedTargetOutsidePaths_Nested(t *testing.T) {
	// A child may not widen what its parent was delegated.
	b := newRepo(t)
	b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{Paths: []string{"zones/*"}})
	b.Delegate("zones", "wide", tuftest.Delegation{Paths: []string{"*"}})
	b.AddTargetTo("wide", "anything.bin", []byte("x"))
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckSignature, "wide", "anything.bin")
}

func TestHostile_Rollback(t *testing.T) {
	bumpTargets := func(md any) {
		md.(*metadata.Metadata[metadata.SnapshotType]).Signed.Meta["targets.json"].Version = 2
	}
	t.Run("plain", func(t *testing.T) {
		b := newRepo(t, tuftest.WithPlainLayout())
		b.EditSigned(tuftest.Snapshot, bumpTargets)
		wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckVersion, "targets")
	})
	t.Run("consistent", func(t *testing.T) {
		b := newRepo(t)
		b.EditSigned(tuftest.Snapshot, bumpTargets)
		b.EditFiles(func(files []tuftest.Entry) []tuftest.Entry {
			for i := range files {
				files[i].Name = strings.Replace(files[i].Name, "/1.targets.json", "/2.targets.json", 1)
			}
			return files
		})
		wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckVersion, "targets")
	})
	t.Run("snapshot", func(t *testing.T) {
		b := newRepo(t, tuftest.WithPlainLayout())
		b.EditSigned(tuftest.Timestamp, func(md any) {
			md.(*metadata.Metadata[metadata.TimestampType]).Signed.Meta["snapshot.json"].Version = 3
		})
		wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckVersion, "snapshot")
	})
}

// hostileEntries returns b's files plus extra.
func hostileEntries(t *testing.T, extra ...tuftest.Entry) ([]tuftest.Entry, [][]byte) {
	b := newRepo(t)
	return append(b.Entries(), extra...), [][]byte{b.RootJSON()}
}

func TestHostile_Entries(t *testing.T) {
	cases := []struct {
		name    string
		entry   tuftest.Entry
		formats []tuftest.Format
		check   string
		mention string
	}{
		{"zip slip", tuftest.Entry{Name: "../evil", Data: []byte("x")}, nil, tuf.CheckLayout, "path escapes the archive"},
		{"zip slip nested", tuftest.Entry{Name: "repo/targets/../../../evil", Data: []byte("x")}, nil, tuf.CheckLayout, "escapes"},
		{"dotdot inside", tuftest.Entry{Name: "repo/a/../targets/x", Data: []byte("x")}, nil, tuf.CheckLayout, `".."`},
		{"absolute", tuftest.Entry{Name: "/etc/passwd", Data: []byte("x")}, nil, tuf.CheckLayout, "absolute path"},
		{"backslash", tuftest.Entry{Name: `repo\..\evil`, Data: []byte("x")}, nil, tuf.CheckLayout, "backslash"},
		{"symlink", tuftest.Entry{Name: "repo/targets/link", Type: tuftest.Symlink, Linkname: "/etc/passwd"}, nil, tuf.CheckArchive, "symbolic link"},
		{"hard link", tuftest.Entry{Name: "repo/targets/link", Type: tuftest.Hardlink, Linkname: "repo/metadata/1.root.json"}, []tuftest.Format{tuftest.Tar, tuftest.TarGz}, tuf.CheckArchive, "hard link"},
		{"fifo", tuftest.Entry{Name: "repo/targets/fifo", Type: tuftest.Fifo}, nil, tuf.CheckArchive, ""},
		{"device", tuftest.Entry{Name: "repo/dev", Type: tuftest.CharDevice}, nil, tuf.CheckArchive, ""},
		{"duplicate", tuftest.Entry{Name: "repo/metadata/timestamp.json", Data: []byte("{}")}, nil, tuf.CheckLayout, "duplicate entry"},
		{"duplicate after cleaning", tuftest.Entry{Name: "repo/./metadata//timestamp.json", Data: []byte("{}")}, nil, tuf.CheckLayout, "duplicate entry"},
		{"file and directory", tuftest.Entry{Name: "repo/metadata/timestamp.json/", Type: tuftest.Dir}, nil, tuf.CheckLayout, "duplicate entry"},
	}
	for _, c := range cases {
		formats := c.formats
		if formats == nil {
			formats = tuftest.Formats
		}
		for _, f := range formats {
			t.Run(c.name+"/"+string(f), func(t *testing.T) {
				entries, roots := hostileEntries(t, c.entry)
				te := wantOpenFails(t, tuftest.Archive(t, f, entries), roots, tuf.Options{}, c.check, "", c.mention)
				if te.Entry != c.entry.Name {
					t.Errorf("error names entry %q, want %q", te.Entry, c.entry.Name)
				}
			})
		}
	}
}

func TestHostile_ZipBomb_Ratio(t *testing.T) {
	bomb := tuftest.Entry{Name: "repo/targets/bomb.bin", Data: make([]byte, 8<<20)}
	entries, roots := hostileEntries(t, bomb)
	opts := tuf.Options{Limits: tuf.Limits{MaxCompressionRatio: 100}}
	for _, f := range []tuftest.Format{tuftest.Zip, tuftest.TarGz, tuftest.TarZst} {
		t.Run(string(f), func(t *testing.T) {
			wantOpenFails(t, tuftest.Archive(t, f, entries), roots, opts, tuf.CheckArchive, "", "compression ratio")
		})
	}
	// zstd squeezes zeros far beyond the default 1000:1.
	wantOpenFails(t, tuftest.Archive(t, tuftest.TarZst, entries), roots, tuf.Options{}, tuf.CheckArchive, "", "compression ratio")
}

func TestHostile_ZipBomb_LyingHeader(t *testing.T) {
	// A metadata entry claiming 100 bytes that inflates to 4 MiB.
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	fw.Write(make([]byte, 4<<20))
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "repo/metadata/timestamp.json", Method: zip.Deflate,
		CRC32: crc32.ChecksumIEEE(make([]byte, 100)), CompressedSize64: uint64(comp.Len()), UncompressedSize64: 100})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	b := newRepo(t)
	wantOpenFails(t, buf.Bytes(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckArchive, "", "timestamp.json")
}

func TestHostile_ZipBomb_OverlappingEntries(t *testing.T) {
	data := bytes.Repeat([]byte("A"), 4096)
	entries, roots := hostileEntries(t,
		tuftest.Entry{Name: "repo/targets/one", Data: data},
		tuftest.Entry{Name: "repo/targets/two", Data: data})
	z := tuftest.Archive(t, tuftest.Zip, entries)
	// Point two's central directory record at one's local header.
	rec := func(name string) int {
		i := bytes.Index(z, []byte("PK\x01\x02"))
		for ; i >= 0; i = i + 4 + bytes.Index(z[i+4:], []byte("PK\x01\x02")) {
			n := int(binary.LittleEndian.Uint16(z[i+28:]))
			if string(z[i+46:i+46+n]) == name {
				return i
			}
		}
		t.Fatalf("no central record for %s", name)
		return 0
	}
	one, two := rec("repo/targets/one"), rec("repo/targets/two")
	copy(z[two+42:two+46], z[one+42:one+46])
	wantOpenFails(t, z, roots, tuf.Options{}, tuf.CheckArchive, "", "overlaps")
}

func TestHostile_UnsupportedZipMethod(t *testing.T) {
	entries, roots := hostileEntries(t)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, _ := zw.Create(e.Name)
		w.Write(e.Data)
	}
	w, _ := zw.CreateRaw(&zip.FileHeader{Name: "repo/targets/x.bz2", Method: 12, CompressedSize64: 3, UncompressedSize64: 3})
	w.Write([]byte("abc"))
	zw.Close()
	wantOpenFails(t, buf.Bytes(), roots, tuf.Options{}, tuf.CheckArchive, "", "compression method")
}

func TestHostile_Truncated(t *testing.T) {
	b := newRepo(t)
	for _, f := range tuftest.Formats {
		data := b.Archive(f)
		for _, cut := range []int{len(data) / 3, len(data)/2 + 7, len(data) - 1, len(data) - 100} {
			t.Run(fmt.Sprintf("%s/%d", f, cut), func(t *testing.T) {
				wantOpenFails(t, data[:cut], [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckArchive, "")
			})
		}
	}
}

func TestHostile_NotAnArchive(t *testing.T) {
	b := newRepo(t)
	roots := [][]byte{b.RootJSON()}
	for name, data := range map[string][]byte{
		"text":            []byte("hello, this is not an archive at all"),
		"json":            b.RootJSON(),
		"zip magic, junk": append([]byte("PK\x03\x04"), bytes.Repeat([]byte{7}, 1000)...),
		"gzip of text":    gzipped(t, []byte(strings.Repeat("not a tar ", 100))),
		"one byte":        {0x1f},
	} {
		t.Run(name, func(t *testing.T) {
			wantOpenFails(t, data, roots, tuf.Options{}, tuf.CheckArchive, "")
		})
	}
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	if _, err := gw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestHostile_Empty(t *testing.T) {
	b := newRepo(t)
	wantOpenFails(t, nil, [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckArchive, "", "empty")
	// An empty but valid archive has no repository in it.
	for _, f := range tuftest.Formats {
		wantOpenFails(t, tuftest.Archive(t, f, nil), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "", "no metadata/")
	}
}

func TestHostile_TooManyEntries(t *testing.T) {
	entries, roots := hostileEntries(t)
	for _, f := range tuftest.Formats {
		wantOpenFails(t, tuftest.Archive(t, f, entries), roots, tuf.Options{Limits: tuf.Limits{MaxEntries: 5}}, tuf.CheckArchive, "", "more than 5 entries")
	}
	// The default, 10000.
	for i := range 10001 - len(entries) {
		entries = append(entries, tuftest.Entry{Name: fmt.Sprintf("repo/targets/pad/%d", i)})
	}
	for _, f := range []tuftest.Format{tuftest.Zip, tuftest.Tar} {
		var buf bytes.Buffer
		if err := tuftest.WriteArchive(&buf, f, entries, true); err != nil { // stored: a deflater per entry is slow
			t.Fatal(err)
		}
		wantOpenFails(t, buf.Bytes(), roots, tuf.Options{}, tuf.CheckArchive, "", "more than 10000 entries")
	}
}

func TestHostile_MetadataOverCap(t *testing.T) {
	pad := func(d []byte) []byte { return append(d, bytes.Repeat([]byte(" "), 20000)...) }
	b := newRepo(t)
	b.EditFiles(editFile("/timestamp.json", pad)) // over go-tuf's 16 KiB timestamp cap
	for _, f := range tuftest.Formats {
		wantOpenFails(t, b.Archive(f), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "", "timestamp.json", "cap")
	}
	b = newRepo(t)
	opts := tuf.Options{Limits: tuf.Limits{MaxMetadataSize: 300}}
	for _, f := range tuftest.Formats {
		wantOpenFails(t, b.Archive(f), [][]byte{b.RootJSON()}, opts, tuf.CheckLayout, "", "cap")
	}
	// Many metadata files, each under its cap, over the total.
	entries, roots := hostileEntries(t)
	for i := range 40 {
		entries = append(entries, tuftest.Entry{Name: fmt.Sprintf("repo/metadata/junk%d.json", i), Data: make([]byte, 100<<10)})
	}
	opts = tuf.Options{Limits: tuf.Limits{MaxMetadataTotal: 1 << 20}}
	for _, f := range tuftest.Formats {
		wantOpenFails(t, tuftest.Archive(t, f, entries), roots, opts, tuf.CheckLayout, "", "in total")
	}
}

func TestHostile_TooLarge(t *testing.T) {
	b := newRepo(t)
	opts := tuf.Options{Limits: tuf.Limits{MaxExpandedSize: 3000}}
	for _, f := range tuftest.Formats {
		_, err := open(t, b.Archive(f), [][]byte{b.RootJSON()}, opts)
		if !errors.Is(err, tuf.ErrTooLarge) {
			t.Fatalf("%s: got %v, want ErrTooLarge", f, err)
		}
		wantCheck(t, err, tuf.CheckArchive, "")
	}
}

func TestHostile_TargetMissing(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(func(files []tuftest.Entry) []tuftest.Entry {
		var out []tuftest.Entry
		for _, f := range files {
			if !strings.HasSuffix(f.Name, "host.img") {
				out = append(out, f)
			}
		}
		return out
	})
	for _, f := range tuftest.Formats {
		wantOpenFails(t, b.Archive(f), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "targets", "images/host.img", "missing")
	}
}

func TestHostile_UncleanTargetPath(t *testing.T) {
	for _, p := range []string{"./a.bin", "a//b.bin", "/abs.bin", "dir/"} {
		b := newRepo(t, tuftest.WithPlainLayout())
		b.AddTarget(p, []byte("x"))
		b.EditFiles(func(files []tuftest.Entry) []tuftest.Entry { return files[:len(files)-1] })
		wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "targets", "clean relative path")
	}
}

func TestHostile_NoMetadataDirectory(t *testing.T) {
	b := newRepo(t)
	entries := []tuftest.Entry{{Name: "a/targets/x", Data: []byte("x")}, {Name: "b/metadata/timestamp.json", Data: []byte("{}")}}
	wantOpenFails(t, tuftest.Archive(t, tuftest.Zip, entries), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "", "no metadata/")
}

func TestHostile_NullDelegationKey(t *testing.T) {
	b := newRepo(t)
	b.Delegate(tuftest.Targets, "zones", tuftest.Delegation{})
	b.AddTargetTo("zones", "z.bin", []byte("z"))
	b.EditSigned(tuftest.Targets, func(md any) {
		d := md.(*metadata.Metadata[metadata.TargetsType]).Signed.Delegations
		for id := range d.Keys {
			d.Keys[id] = nil
		}
	})
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "targets", "null")
}

func TestHostile_NullKeyInTrustedRoot(t *testing.T) {
	// go-tuf dereferences it; Open must fail, not panic.
	b := newRepo(t)
	b.EditSigned(tuftest.Root, func(md any) {
		r := md.(*metadata.Metadata[metadata.RootType])
		for id := range r.Signed.Keys {
			r.Signed.Keys[id] = nil
		}
	})
	_, err := open(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{})
	if !errors.Is(err, tuf.ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

func TestHostile_SuccinctBitLength(t *testing.T) {
	b := newRepo(t)
	key := tuftest.GenerateKey(t, tuftest.ED25519)
	b.Delegate(tuftest.Targets, "bin-0", tuftest.Delegation{Keys: []*tuftest.Key{key}})
	b.EditSigned(tuftest.Targets, func(md any) {
		d := md.(*metadata.Metadata[metadata.TargetsType]).Signed.Delegations
		d.Roles = nil
		d.SuccinctRoles = &metadata.SuccinctRoles{KeyIDs: []string{key.ID}, Threshold: 1, BitLength: 40, NamePrefix: "bin"}
	})
	wantOpenFails(t, b.Zip(), [][]byte{b.RootJSON()}, tuf.Options{}, tuf.CheckLayout, "targets", "bit_length")
}
