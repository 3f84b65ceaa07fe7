package tuf

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zip"
	"github.com/klauspost/compress/zstd"
)

// format is the container kind, found from the first bytes, never the name.
type format int

const (
	formatZip format = iota + 1
	formatTar
	formatTarGz
	formatTarZst
)

func (f format) String() string {
	switch f {
	case formatZip:
		return "zip"
	case formatTar:
		return "tar"
	case formatTarGz:
		return "tar.gz"
	case formatTarZst:
		return "tar.zst"
	}
	return "unknown"
}

// zstd frames may ask for windows up to 3.75 TB; the decoder allocates the
// window, so cap it. 64 MiB covers every zstd level without --long=27+.
const zstdMaxWindow = 64 << 20

// A compressed tar stream may carry padding after the tar trailer (tar pads to
// 10 KiB records); more than this is not a tar archive we want.
const maxTrailing = 1 << 20

func sniff(r io.ReaderAt, size int64) (format, error) {
	if size <= 0 {
		return 0, archiveErr("", "empty input")
	}
	var buf [512]byte
	n, err := r.ReadAt(buf[:min(size, int64(len(buf)))], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, archiveErr("", "read: %w", err)
	}
	b := buf[:n]
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return formatZip, nil
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return formatTarGz, nil
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return formatTarZst, nil
	case len(b) == 512 && string(b[257:262]) == "ustar":
		// POSIX "ustar\x0000" and GNU "ustar  \x00" both start so; pre-POSIX
		// v7 archives carry no magic and are refused.
		return formatTar, nil
	case len(b) == 512 && allZero(b):
		return formatTar, nil // an empty tar: just the end-of-archive marker
	}
	return 0, archiveErr("", "not a zip, tar, tar.gz or tar.zst archive")
}

// cleanName checks an entry name and returns it cleaned ("./a//b" -> "a/b").
// Nothing is ever extracted, but names decide what is looked up, so anything
// that could mean two things is refused.
func cleanName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", errors.New("empty name")
	case strings.ContainsRune(raw, 0):
		return "", errors.New("NUL in name")
	case strings.Contains(raw, `\`):
		// zip and tar names use '/'; a backslash is a Windows path or a trick.
		return "", errors.New("backslash in name")
	case strings.HasPrefix(raw, "/"):
		return "", errors.New("absolute path")
	}
	trimmed := strings.TrimRight(raw, "/")
	if trimmed == "" {
		return "", errors.New("absolute path")
	}
	if !filepath.IsLocal(trimmed) {
		return "", errors.New("path escapes the archive")
	}
	for _, elem := range strings.Split(trimmed, "/") {
		if elem == ".." {
			return "", errors.New(`path contains ".."`)
		}
	}
	return path.Clean(trimmed), nil
}

// entry is one regular file of the archive.
type entry struct {
	name  string // cleaned
	raw   string // as written in the archive, for messages
	size  int64  // declared expanded size
	index int    // position among the archive's regular files
	zf    *zip.File
	data  []byte // metadata and manifest candidates, read during the scan
	held  bool   // data holds the whole content
}

// archive is the checked index of an archive's regular files.
type archive struct {
	format  format
	r       io.ReaderAt
	size    int64
	lim     Limits
	entries []*entry          // archive order
	byName  map[string]*entry // cleaned name -> entry
	dirs    map[string]bool   // cleaned directory names
	held    int64             // bytes of entry.data in memory
}

var (
	// Version-prefixed metadata, as consistent snapshots and root chains use.
	rootFileRE      = regexp.MustCompile(`^([0-9]+\.)?root\.json$`)
	timestampFileRE = regexp.MustCompile(`^([0-9]+\.)?timestamp\.json$`)
	manifestFileRE  = regexp.MustCompile(`^([0-9a-f]{64}\.|[0-9a-f]{128}\.)?artifacts(-v2)?\.json$`)
)

// candidate reports whether a file must be held in memory because it may be
// metadata (".../metadata/*.json") or the manifest target, and its cap. The
// layout's top-level prefix is not known yet, so both "x" and "dir/x" count.
func (a *archive) candidate(name string) (ok bool, limit int64) {
	rel := []string{name}
	if i := strings.IndexByte(name, '/'); i >= 0 {
		rel = append(rel, name[i+1:])
	}
	for _, r := range rel {
		if base, found := strings.CutPrefix(r, "metadata/"); found && !strings.Contains(base, "/") && strings.HasSuffix(base, ".json") {
			switch {
			case rootFileRE.MatchString(base):
				return true, min(a.lim.MaxMetadataSize, rootMaxSize)
			case timestampFileRE.MatchString(base):
				return true, min(a.lim.MaxMetadataSize, timestampMaxSize)
			}
			return true, a.lim.MaxMetadataSize
		}
		if base, found := strings.CutPrefix(r, "targets/"); found && manifestFileRE.MatchString(base) {
			return true, -1 // held if small enough; an oversized manifest fails in Manifest
		}
	}
	return false, 0
}

func newIndex(lim Limits) *archive {
	return &archive{lim: lim, byName: map[string]*entry{}, dirs: map[string]bool{}}
}

// add indexes a regular file after its name was cleaned; it refuses
// duplicates and counts sizes.
func (a *archive) add(e *entry, declaredTotal *int64) error {
	if _, dup := a.byName[e.name]; dup || a.dirs[e.name] {
		return layoutErr(e.raw, "duplicate entry %q", e.name)
	}
	if e.size < 0 {
		return archiveErr(e.raw, "negative size")
	}
	*declaredTotal += e.size
	if *declaredTotal > a.lim.MaxExpandedSize || *declaredTotal < 0 {
		return tooLargeErr(e.raw, a.lim.MaxExpandedSize)
	}
	e.index = len(a.entries)
	a.entries = append(a.entries, e)
	a.byName[e.name] = e
	return nil
}

func (a *archive) addDir(raw, name string) error {
	if name == "." {
		return nil
	}
	if _, dup := a.byName[name]; dup || a.dirs[name] {
		return layoutErr(raw, "duplicate entry %q", name)
	}
	a.dirs[name] = true
	return nil
}

// hold reads a candidate's content into memory, within its cap and the
// archive-wide metadata budget.
func (a *archive) hold(e *entry, limit int64, body io.Reader) error {
	if limit < 0 { // manifest candidate
		if e.size > a.lim.MaxMetadataSize {
			return nil
		}
		limit = a.lim.MaxMetadataSize
	}
	if e.size > limit {
		return layoutErr(e.raw, "metadata file is %d bytes, over the %d-byte cap", e.size, limit)
	}
	if a.held+e.size > a.lim.MaxMetadataTotal {
		return layoutErr(e.raw, "metadata files exceed %d bytes in total", a.lim.MaxMetadataTotal)
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return readErr(e.raw, err)
	}
	if int64(len(data)) != e.size {
		return archiveErr(e.raw, "entry holds %d bytes, its header says %d", len(data), e.size)
	}
	a.held += int64(len(data))
	e.data, e.held = data, true
	return nil
}

// readErr classifies an error met while reading entry content: limit and
// context errors pass through, anything else means a corrupt archive.
func readErr(entry string, err error) error {
	var te *Error
	if errors.As(err, &te) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return archiveErr(entry, "truncated or corrupt: %w", err)
}

// scan checks every entry of the archive and holds the metadata candidates.
func scan(ctx context.Context, r io.ReaderAt, size int64, lim Limits) (*archive, error) {
	f, err := sniff(r, size)
	if err != nil {
		return nil, err
	}
	a := newIndex(lim)
	a.format, a.r, a.size = f, r, size
	if f == formatZip {
		err = a.scanZip(ctx)
	} else {
		err = a.walkTar(ctx, a, func(e *entry, body io.Reader) error {
			if ok, limit := a.candidate(e.name); ok {
				return a.hold(e, limit, body)
			}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *archive) scanZip(ctx context.Context) error {
	zr, err := zip.NewReader(a.r, a.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked below
		return archiveErr("", "not a valid zip archive: %w", err)
	}
	if len(zr.File) > a.lim.MaxEntries {
		return archiveErr("", "more than %d entries", a.lim.MaxEntries)
	}
	type span struct {
		start, end int64
		name       string
	}
	var spans []span
	var declared int64
	for i, zf := range zr.File {
		if i%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		name, err := cleanName(zf.Name)
		if err != nil {
			return layoutErr(zf.Name, "%w", err)
		}
		mode := zf.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return archiveErr(zf.Name, "symbolic link")
		case mode.IsDir():
			if err := a.addDir(zf.Name, name); err != nil {
				return err
			}
			continue
		case mode.Type() != 0:
			return archiveErr(zf.Name, "unsupported entry type %v", mode.Type())
		}
		if zf.Flags&0x1 != 0 {
			return archiveErr(zf.Name, "encrypted entry")
		}
		if zf.Method != zip.Store && zf.Method != zip.Deflate {
			return archiveErr(zf.Name, "unsupported compression method %d", zf.Method)
		}
		// Cheap checks on the declared sizes before reading anything; the
		// actual bytes are counted again while decompressing.
		unc, comp := zf.UncompressedSize64, zf.CompressedSize64
		if unc > uint64(a.lim.MaxExpandedSize) {
			return tooLargeErr(zf.Name, a.lim.MaxExpandedSize)
		}
		if comp > uint64(a.size) {
			return archiveErr(zf.Name, "compressed size %d beyond the archive's end", comp)
		}
		if zf.Method == zip.Store && unc != comp {
			return archiveErr(zf.Name, "stored entry's sizes differ (%d, %d)", unc, comp)
		}
		if unc > ratioFloor && unc/uint64(a.lim.MaxCompressionRatio) > comp {
			return archiveErr(zf.Name, "compression ratio over %d:1 (%d bytes from %d)", a.lim.MaxCompressionRatio, unc, comp)
		}
		off, err := zf.DataOffset()
		if err != nil {
			return archiveErr(zf.Name, "bad local header: %w", err)
		}
		if off < 0 || off > a.size-int64(comp) {
			return archiveErr(zf.Name, "entry data beyond the archive's end")
		}
		spans = append(spans, span{off, off + int64(comp), zf.Name})
		e := &entry{name: name, raw: zf.Name, size: int64(unc), zf: zf}
		if err := a.add(e, &declared); err != nil {
			return err
		}
	}
	// Entries sharing compressed bytes are the overlapping-zip bomb: a few
	// KiB of deflate data referenced by thousands of entries.
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return archiveErr(spans[i].name, "entry data overlaps entry %q", spans[i-1].name)
		}
	}
	for _, e := range a.entries {
		if ok, limit := a.candidate(e.name); ok {
			if limit >= 0 && e.size > limit {
				return layoutErr(e.raw, "metadata file is %d bytes, over the %d-byte cap", e.size, limit)
			}
			if err := a.holdZip(ctx, e, limit); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *archive) holdZip(ctx context.Context, e *entry, limit int64) error {
	rc, err := a.openZip(ctx, e, new(int64))
	if err != nil {
		return err
	}
	defer rc.Close()
	return a.hold(e, limit, rc)
}

// openZip opens a zip entry's content behind a guard counting the actual
// expanded bytes against the entry's compressed size and the pass total.
func (a *archive) openZip(ctx context.Context, e *entry, total *int64) (io.ReadCloser, error) {
	rc, err := e.zf.Open()
	if err != nil {
		return nil, archiveErr(e.raw, "open: %w", err)
	}
	comp := int64(e.zf.CompressedSize64)
	g := &guard{ctx: ctx, r: rc, lim: &a.lim, total: total, entry: e.raw, compressed: func() int64 { return comp }}
	return struct {
		io.Reader
		io.Closer
	}{g, rc}, nil
}

// walkTar reads the tar stream (decompressing it if need be) once, checking
// every entry and indexing it into idx, and calls fn for each regular file
// with its content. fn need not read the content.
func (a *archive) walkTar(ctx context.Context, idx *archive, fn func(e *entry, body io.Reader) error) error {
	sr := io.NewSectionReader(a.r, 0, a.size)
	in := &countReader{r: sr}
	g := &guard{ctx: ctx, lim: &a.lim, total: new(int64)}
	var src io.Reader
	switch a.format {
	case formatTar:
		// Not compressed: let tar seek past content it skips.
		g.r = sr
		src = &seekGuard{g, sr}
	case formatTarGz:
		zr, err := gzip.NewReader(in)
		if err != nil {
			return archiveErr("", "bad gzip stream: %w", err)
		}
		defer zr.Close()
		g.r, g.compressed, src = zr, in.count, g
	case formatTarZst:
		zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return archiveErr("", "bad zstd stream: %w", err)
		}
		defer zr.Close()
		g.r, g.compressed, src = zr, in.count, g
	default:
		return archiveErr("", "not a tar archive")
	}
	tr := tar.NewReader(src)
	var declared int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if g.err != nil {
				return g.err
			}
			if n == 0 && a.format != formatTar {
				return archiveErr("", "%s stream does not hold a tar archive: %w", a.format, err)
			}
			return archiveErr("", "truncated or corrupt tar after %d entries: %w", n, err)
		}
		if n >= a.lim.MaxEntries {
			return archiveErr(hdr.Name, "more than %d entries", a.lim.MaxEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader { // pax global header (git archive writes one)
			continue
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return layoutErr(hdr.Name, "%w", err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, '\x00':
			for k := range hdr.PAXRecords {
				if strings.HasPrefix(k, "GNU.sparse.") {
					return archiveErr(hdr.Name, "sparse file")
				}
			}
		case tar.TypeDir:
			if err := idx.addDir(hdr.Name, name); err != nil {
				return err
			}
			continue
		case tar.TypeSymlink:
			return archiveErr(hdr.Name, "symbolic link to %q", hdr.Linkname)
		case tar.TypeLink:
			return archiveErr(hdr.Name, "hard link to %q", hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			return archiveErr(hdr.Name, "device file")
		case tar.TypeFifo:
			return archiveErr(hdr.Name, "fifo")
		case tar.TypeGNUSparse:
			return archiveErr(hdr.Name, "sparse file")
		default:
			return archiveErr(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
		}
		e := &entry{name: name, raw: hdr.Name, size: hdr.Size}
		if err := idx.add(e, &declared); err != nil {
			return err
		}
		g.entry = hdr.Name
		if err := fn(e, tr); err != nil {
			return err
		}
	}
	if a.format == formatTar {
		// archive/tar takes a stream that stops at an entry boundary for a
		// complete archive; a complete one ends with zero blocks.
		var tail [512]byte
		if a.size < int64(len(tail)) {
			return archiveErr("", "truncated tar: no end-of-archive marker")
		}
		if _, err := a.r.ReadAt(tail[:], a.size-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
			return archiveErr("", "read: %w", err)
		}
		if !allZero(tail[:]) {
			return archiveErr("", "truncated tar: no end-of-archive marker")
		}
	} else {
		// Read to the end of the compressed stream, so a truncated or
		// corrupt one fails here rather than passing unnoticed after the
		// tar trailer.
		n, err := io.Copy(io.Discard, io.LimitReader(g, maxTrailing+1))
		if err != nil {
			if g.err != nil {
				return g.err
			}
			return archiveErr("", "truncated or corrupt %s stream: %w", a.format, err)
		}
		if n > maxTrailing {
			return archiveErr("", "more than %d bytes after the tar archive", maxTrailing)
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) count() int64 { return c.n }

// guard counts expanded bytes as they are actually produced (headers can
// lie), failing the read once the pass total passes MaxExpandedSize or the
// ratio to the compressed bytes behind them passes MaxCompressionRatio. It
// also stops on context cancellation. Its error is sticky.
type guard struct {
	ctx        context.Context
	r          io.Reader
	lim        *Limits
	total      *int64       // expanded bytes in this pass, shared across entries
	n          int64        // expanded bytes through this guard
	compressed func() int64 // compressed bytes behind n; nil if not compressed
	entry      string       // current entry, for messages
	err        error
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if err := g.ctx.Err(); err != nil {
		g.err = err
		return 0, err
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	*g.total += int64(n)
	if *g.total > g.lim.MaxExpandedSize {
		g.err = tooLargeErr(g.entry, g.lim.MaxExpandedSize)
		return 0, g.err
	}
	if g.compressed != nil && g.n > ratioFloor && g.n/g.lim.MaxCompressionRatio > g.compressed() {
		g.err = archiveErr(g.entry, "compression ratio over %d:1 (%d bytes from %d)",
			g.lim.MaxCompressionRatio, g.n, g.compressed())
		return 0, g.err
	}
	return n, err
}

// seekGuard lets archive/tar skip unread content of an uncompressed tar by
// seeking; skipped bytes are not expanded, so they are not counted.
type seekGuard struct {
	*guard
	s io.Seeker
}

func (s *seekGuard) Seek(offset int64, whence int) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	return s.s.Seek(offset, whence)
}

var _ io.ReadSeeker = (*seekGuard)(nil)
