package tuf

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"unicode/utf8"

	"github.com/klauspost/compress/zip"
)

// A Hubris build archive is a zip holding img/final.elf, the image as
// loaded into flash. The image header (at one of a few fixed offsets from
// the image's start, found by its magic) gives the image's total length; the
// caboose is the last region of the image: a magic word, TLV-C chunks, and
// its own length as the image's last word. The control plane selects images
// by the caboose's BORD (board) and SIGN (root key table hash) tags.

// Caboose tags the control plane reads.
var (
	cabooseBoard   = [4]byte{'B', 'O', 'R', 'D'}
	cabooseName    = [4]byte{'N', 'A', 'M', 'E'}
	cabooseSign    = [4]byte{'S', 'I', 'G', 'N'}
	cabooseVersion = [4]byte{'V', 'E', 'R', 'S'}
	cabooseGitc    = [4]byte{'G', 'I', 'T', 'C'}
)

const (
	hubrisELF = "img/final.elf"
	// MaxHubrisELF caps img/final.elf, read whole into memory to find the
	// caboose; Hubris images fill at most a few MiB of flash.
	MaxHubrisELF = 32 << 20

	cabooseMagic = 0xcab0005e
	// tlvcHeaderPrime is TLV-C's header checksum multiplier.
	tlvcHeaderPrime = 0x6b329f69
)

// imageHeaderMagics are the image header magics of Hubris kernel ABIs old
// and new; imageHeaderOffsets where microcontrollers place the header.
var (
	imageHeaderMagics  = []uint32{0x15356637, 0x64ced6ca}
	imageHeaderOffsets = []uint32{0xbc, 0xc0, 0x298}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Caboose is what a Hubris image's caboose says about it. A tag the caboose
// lacks is empty (HasSign tells an absent SIGN from an empty one).
type Caboose struct {
	Board     string // BORD
	Name      string // NAME
	Sign      string // SIGN: hash of the RoT's root key table, RoT images only
	HasSign   bool
	Version   string // VERS
	GitCommit string // GITC
}

// Lab reports whether the image is a lab build (NAME differs from BORD):
// kept in repositories for manufacturing, never used by the control plane.
func (c Caboose) Lab() bool { return c.Name != "" && c.Board != "" && c.Name != c.Board }

// ReadHubrisCaboose reads the caboose of the Hubris build archive at r
// (size bytes): zip → img/final.elf → image header → caboose → TLV-C tags.
// BORD is required. Errors are *Error with Check "hubris"; nothing is held
// in memory but img/final.elf, capped at MaxHubrisELF.
func ReadHubrisCaboose(r io.ReaderAt, size int64) (Caboose, error) {
	elf, err := readHubrisELF(r, size)
	if err != nil {
		return Caboose{}, err
	}
	raw, err := cabooseOfELF(elf)
	if err != nil {
		return Caboose{}, err
	}
	return ParseCaboose(raw)
}

func hubrisErr(format string, args ...any) error {
	return &Error{Check: CheckHubris, Err: fmt.Errorf(format, args...)}
}

func readHubrisELF(r io.ReaderAt, size int64) ([]byte, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, hubrisErr("not a Hubris archive (zip): %w", err)
	}
	zr.RegisterDecompressor(12, func(r io.Reader) io.ReadCloser { return io.NopCloser(bzip2.NewReader(r)) })
	var zf *zip.File
	for _, f := range zr.File {
		if f.Name == hubrisELF {
			if zf != nil {
				return nil, hubrisErr("two %s entries", hubrisELF)
			}
			zf = f
		}
	}
	if zf == nil {
		return nil, hubrisErr("no %s in the Hubris archive", hubrisELF)
	}
	if !zf.Mode().IsRegular() {
		return nil, hubrisErr("%s is not a regular file", hubrisELF)
	}
	if zf.UncompressedSize64 > MaxHubrisELF {
		return nil, hubrisErr("%s is %d bytes, over the %d-byte cap", hubrisELF, zf.UncompressedSize64, MaxHubrisELF)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, hubrisErr("open %s: %w", hubrisELF, err)
	}
	defer rc.Close()
	// The declared size may lie: read one byte past the cap to see it.
	data, err := io.ReadAll(io.LimitReader(rc, MaxHubrisELF+1))
	if err != nil {
		return nil, hubrisErr("read %s: %w", hubrisELF, err)
	}
	if len(data) > MaxHubrisELF {
		return nil, hubrisErr("%s expands over the %d-byte cap", hubrisELF, MaxHubrisELF)
	}
	return data, nil
}

// segment is a loadable ELF segment at its physical (flash) address.
type segment struct {
	addr uint64
	data []byte
}

// loadSegments returns the PT_LOAD segments of a 32-bit little-endian ELF
// (what Hubris builds for its Arm targets), merged where contiguous.
func loadSegments(elf []byte) ([]segment, error) {
	le := binary.LittleEndian
	if len(elf) < 52 || string(elf[:4]) != "\x7fELF" {
		return nil, hubrisErr("%s is not an ELF file", hubrisELF)
	}
	if elf[4] != 1 || elf[5] != 1 {
		return nil, hubrisErr("%s is not a 32-bit little-endian ELF file", hubrisELF)
	}
	phoff := uint64(le.Uint32(elf[0x1c:]))
	phentsize := uint64(le.Uint16(elf[0x2a:]))
	phnum := uint64(le.Uint16(elf[0x2c:]))
	if phentsize < 32 || phnum == 0 || phoff > uint64(len(elf)) || phnum*phentsize > uint64(len(elf))-phoff {
		return nil, hubrisErr("%s has a bad program header table", hubrisELF)
	}
	var segs []segment
	for i := uint64(0); i < phnum; i++ {
		ph := elf[phoff+i*phentsize:]
		if le.Uint32(ph) != 1 { // PT_LOAD
			continue
		}
		off, paddr, filesz := uint64(le.Uint32(ph[4:])), uint64(le.Uint32(ph[12:])), uint64(le.Uint32(ph[16:]))
		if filesz == 0 {
			continue
		}
		if off > uint64(len(elf)) || filesz > uint64(len(elf))-off {
			return nil, hubrisErr("%s: segment %d lies beyond the file's end", hubrisELF, i)
		}
		segs = append(segs, segment{addr: paddr, data: elf[off : off+filesz]})
	}
	if len(segs) == 0 {
		return nil, hubrisErr("%s has no loadable segment", hubrisELF)
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].addr < segs[j].addr })
	out := segs[:1:1]
	for _, s := range segs[1:] {
		last := &out[len(out)-1]
		end := last.addr + uint64(len(last.data))
		switch {
		case s.addr < end:
			return nil, hubrisErr("%s: loadable segments overlap at %#x", hubrisELF, s.addr)
		case s.addr == end:
			last.data = append(append([]byte(nil), last.data...), s.data...)
		default:
			out = append(out, s)
		}
	}
	return out, nil
}

// flash reads n bytes at addr, which must lie in one contiguous run.
func flash(segs []segment, addr, n uint64) ([]byte, bool) {
	for _, s := range segs {
		if addr >= s.addr && addr-s.addr <= uint64(len(s.data)) && n <= uint64(len(s.data))-(addr-s.addr) {
			o := addr - s.addr
			return s.data[o : o+n], true
		}
	}
	return nil, false
}

func word(segs []segment, addr uint64) (uint32, bool) {
	b, ok := flash(segs, addr, 4)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b), true
}

// cabooseOfELF finds the caboose's TLV-C content (without its magic and
// length words) in a Hubris image.
func cabooseOfELF(elf []byte) ([]byte, error) {
	segs, err := loadSegments(elf)
	if err != nil {
		return nil, err
	}
	start := segs[0].addr
	var header uint64
	found := false
	for _, off := range imageHeaderOffsets {
		if m, ok := word(segs, start+uint64(off)); ok {
			for _, magic := range imageHeaderMagics {
				if m == magic {
					header, found = start+uint64(off), true
				}
			}
		}
		if found {
			break
		}
	}
	if !found {
		return nil, hubrisErr("%s: no Hubris image header", hubrisELF)
	}
	total, ok := word(segs, header+4)
	if !ok || total < 8 {
		return nil, hubrisErr("%s: bad image length", hubrisELF)
	}
	end := start + uint64(total)
	size, ok := word(segs, end-4)
	if !ok {
		return nil, hubrisErr("%s: image length %d lies beyond the loaded image", hubrisELF, total)
	}
	if size < 8 || size > total {
		return nil, hubrisErr("%s: no caboose (length word %d)", hubrisELF, size)
	}
	if m, ok := word(segs, end-uint64(size)); !ok || m != cabooseMagic {
		return nil, hubrisErr("%s: no caboose (bad magic)", hubrisELF)
	}
	body, ok := flash(segs, end-uint64(size)+4, uint64(size)-8)
	if !ok {
		return nil, hubrisErr("%s: caboose lies beyond the loaded image", hubrisELF)
	}
	return body, nil
}

// ParseCaboose reads the tags of a caboose's TLV-C content. Chunks are read
// until a header whose checksum fails (the erased rest of the caboose); a
// tag the control plane reads must pass its body checksum and, for BORD and
// SIGN, be UTF-8. BORD is required. The first of repeated tags wins.
func ParseCaboose(b []byte) (Caboose, error) {
	le := binary.LittleEndian
	var c Caboose
	seen := map[[4]byte]bool{}
	for len(b) >= 12 {
		var tag [4]byte
		copy(tag[:], b)
		n := le.Uint32(b[4:])
		if le.Uint32(b[8:]) != ^(le.Uint32(b)*tlvcHeaderPrime + n) {
			break // not a chunk: the end of the TLV-C data
		}
		padded := (uint64(n) + 3) &^ 3
		if padded+4 > uint64(len(b)-12) {
			return Caboose{}, hubrisErr("caboose chunk %q runs past the caboose's end", tag[:])
		}
		body := b[12 : 12+n]
		sum := le.Uint32(b[12+padded:])
		b = b[12+padded+4:]
		var dst *string
		switch tag {
		case cabooseBoard:
			dst = &c.Board
		case cabooseName:
			dst = &c.Name
		case cabooseSign:
			dst = &c.Sign
		case cabooseVersion:
			dst = &c.Version
		case cabooseGitc:
			dst = &c.GitCommit
		default:
			continue
		}
		if seen[tag] {
			continue
		}
		seen[tag] = true
		if crc32.Checksum(body, castagnoli) != sum {
			return Caboose{}, hubrisErr("caboose tag %s fails its checksum", tag[:])
		}
		if !utf8.Valid(body) || bytes.IndexByte(body, 0) >= 0 {
			return Caboose{}, hubrisErr("caboose tag %s is not UTF-8 text", tag[:])
		}
		*dst = string(body)
		if tag == cabooseSign {
			c.HasSign = true
		}
	}
	if c.Board == "" {
		return Caboose{}, hubrisErr("caboose has no BORD tag")
	}
	return c, nil
}
