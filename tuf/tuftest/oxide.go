package tuftest

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zip"
)

// Builders for Oxide (tufaceous) repository content: v2 manifests, v1
// composite tarballs, zone tarballs and Hubris archives with a caboose.

// ArtifactV2 is one artifact of an artifacts-v2.json manifest.
type ArtifactV2 struct {
	TargetName string            `json:"target_name"`
	Version    string            `json:"version"`
	Tags       map[string]string `json:"tags"`
}

// SetManifestV2 adds (or replaces) the artifacts-v2.json target.
func (b *Builder) SetManifestV2(systemVersion string, artifacts []ArtifactV2) {
	b.AddTarget("artifacts-v2.json", ManifestV2JSON(systemVersion, artifacts))
}

// ManifestV2JSON returns an artifacts-v2.json document.
func ManifestV2JSON(systemVersion string, artifacts []ArtifactV2) []byte {
	if artifacts == nil {
		artifacts = []ArtifactV2{}
	}
	data, err := json.MarshalIndent(struct {
		SystemVersion string            `json:"system_version"`
		Artifacts     []ArtifactV2      `json:"artifacts"`
		Metadata      map[string]string `json:"metadata"`
	}{systemVersion, artifacts, map[string]string{}}, "", "  ")
	if err != nil {
		panic(err) // strings only
	}
	return data
}

// OxideJSON is a composite's oxide.json of type typ ("os", "rot",
// "control_plane").
func OxideJSON(typ string) []byte { return []byte(fmt.Sprintf(`{"v":"1","t":%q}`, typ)) }

// Composite is a v1 composite tarball (tar.gz): oxide.json of type typ,
// then entries.
func Composite(t testing.TB, typ string, entries ...Entry) []byte {
	t.Helper()
	return Archive(t, TarGz, append([]Entry{{Name: "oxide.json", Data: OxideJSON(typ)}}, entries...))
}

// Zone is a zone image tarball (tar.gz) whose oxide.json names pkg and
// version, followed by entries (a file "root/x" if none).
func Zone(t testing.TB, pkg, version string, entries ...Entry) []byte {
	t.Helper()
	if entries == nil {
		entries = []Entry{{Name: "root/x", Data: []byte(pkg + " " + version)}}
	}
	meta := fmt.Sprintf(`{"v":"1","t":"layer","pkg":%q,"version":%q}`, pkg, version)
	return Archive(t, TarGz, append([]Entry{{Name: "oxide.json", Data: []byte(meta)}}, entries...))
}

// HubrisArchive is a Hubris build archive (zip with img/final.elf) whose
// caboose carries BORD=board, NAME=name, VERS=version and, unless sign is
// empty, SIGN=sign. filler makes images of one board differ.
func HubrisArchive(t testing.TB, board, name, sign, version string, filler byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	if err := zw.SetComment("hubris build archive v0"); err != nil {
		t.Fatal(err)
	}
	w, err := zw.Create("img/final.elf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(HubrisELF(board, name, sign, version, filler)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// HubrisELF is a 32-bit Arm ELF image with one loadable segment at flash
// address 0x08000000: the image header at offset 0x298, a 256-byte caboose
// at the image's end.
func HubrisELF(board, name, sign, version string, filler byte) []byte {
	const (
		imageLen   = 0x400
		cabooseLen = 0x100
		base       = 0x08000000
	)
	le := binary.LittleEndian
	img := make([]byte, imageLen)
	for i := 0x10; i < 0x200; i++ {
		img[i] = filler
	}
	le.PutUint32(img[0x298:], 0x64ced6ca)
	le.PutUint32(img[0x29c:], imageLen)
	cab := img[imageLen-cabooseLen:]
	for i := range cab {
		cab[i] = 0xff // erased flash
	}
	le.PutUint32(cab, 0xcab0005e)
	var tlv []byte
	tlv = AppendTLVC(tlv, "GITC", []byte("0123456789abcdef"))
	tlv = AppendTLVC(tlv, "BORD", []byte(board))
	tlv = AppendTLVC(tlv, "NAME", []byte(name))
	tlv = AppendTLVC(tlv, "VERS", []byte(version))
	if sign != "" {
		tlv = AppendTLVC(tlv, "SIGN", []byte(sign))
	}
	if len(tlv) > cabooseLen-8 {
		panic("tuftest: caboose tags too long")
	}
	copy(cab[4:], tlv)
	le.PutUint32(cab[cabooseLen-4:], cabooseLen)

	// ELF header, one program header, then the segment.
	const ehsize, phsize = 52, 32
	elf := make([]byte, ehsize+phsize, ehsize+phsize+imageLen)
	copy(elf, "\x7fELF\x01\x01\x01")
	le.PutUint16(elf[0x10:], 2)    // ET_EXEC
	le.PutUint16(elf[0x12:], 0x28) // EM_ARM
	le.PutUint32(elf[0x14:], 1)
	le.PutUint32(elf[0x1c:], ehsize) // e_phoff
	le.PutUint16(elf[0x28:], ehsize)
	le.PutUint16(elf[0x2a:], phsize)
	le.PutUint16(elf[0x2c:], 1)
	ph := elf[ehsize:]
	le.PutUint32(ph[0:], 1)             // PT_LOAD
	le.PutUint32(ph[4:], ehsize+phsize) // p_offset
	le.PutUint32(ph[8:], base)          // p_vaddr
	le.PutUint32(ph[12:], base)         // p_paddr
	le.PutUint32(ph[16:], imageLen)     // p_filesz
	le.PutUint32(ph[20:], imageLen)     // p_memsz
	return append(elf, img...)
}

// AppendTLVC appends one TLV-C chunk: tag, length, header checksum, body
// padded to four bytes, CRC-32C of the body.
func AppendTLVC(b []byte, tag string, body []byte) []byte {
	le := binary.LittleEndian
	var t [4]byte
	copy(t[:], tag)
	n := uint32(len(body))
	b = append(b, t[:]...)
	b = le.AppendUint32(b, n)
	b = le.AppendUint32(b, ^(le.Uint32(t[:])*0x6b329f69 + n))
	b = append(b, body...)
	for i := len(body); i%4 != 0; i++ {
		b = append(b, 0)
	}
	return le.AppendUint32(b, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
}

// NewZipWriter returns a zip writer, for tests that zip content themselves.
func NewZipWriter(w io.Writer) *zip.Writer { return zip.NewWriter(w) }

// GzipBomb is a tar.gz whose one file, name, declares declared bytes and
// whose gzip stream (about size bytes: repeated members of compressed
// zeros) expands to roughly a thousand times its size before it ends.
func GzipBomb(t testing.TB, name string, declared int64, size int) []byte {
	t.Helper()
	var out, hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: declared}); err != nil {
		t.Fatal(err)
	}
	gw := gzip.NewWriter(&out)
	gw.Write(hdr.Bytes())
	gw.Close()
	var member bytes.Buffer
	gw, _ = gzip.NewWriterLevel(&member, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 64 {
		gw.Write(zeros)
	}
	gw.Close()
	for out.Len() < size {
		out.Write(member.Bytes())
	}
	return out.Bytes()
}
