package tuf

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// tufaceous v1 composite artifacts are gzip tarballs holding several images
// and an oxide.json naming the composite's type. Nexus splits them at
// upload and records the parts; SplitComposite reads one in a single
// streaming pass and hands each part to the caller as it goes.

// v1 composite kinds.
const (
	KindHost         = "host"
	KindTrampoline   = "trampoline"
	KindGimletRot    = "gimlet_rot"
	KindPscRot       = "psc_rot"
	KindSwitchRot    = "switch_rot"
	KindControlPlane = "control_plane"
	// KindZone is the derived kind of each zone of a control plane.
	KindZone = "zone"
)

// IsComposite reports whether a v1 artifact kind is split at upload.
func IsComposite(kind string) bool {
	_, ok := compositeParts[kind]
	return ok || kind == KindControlPlane
}

// compositeType is the "t" its oxide.json must carry.
func compositeType(kind string) string {
	switch kind {
	case KindHost, KindTrampoline:
		return "os"
	case KindControlPlane:
		return "control_plane"
	}
	return "rot"
}

// compositeParts maps each composite kind but control_plane to its parts:
// inner path → derived kind. checkPartsPresent says which are required.
var compositeParts = map[string]map[string]string{
	KindHost: {
		"image/gimlet.rom": "gimlet_host_phase_1",
		"image/cosmo.rom":  "cosmo_host_phase_1",
		"image/zfs.img":    "host_phase_2",
	},
	KindTrampoline: {
		"image/gimlet.rom": "gimlet_trampoline_phase_1",
		"image/cosmo.rom":  "cosmo_trampoline_phase_1",
		"image/zfs.img":    "trampoline_phase_2",
	},
	KindGimletRot: {"archive-a.zip": "gimlet_rot_image_a", "archive-b.zip": "gimlet_rot_image_b"},
	KindPscRot:    {"archive-a.zip": "psc_rot_image_a", "archive-b.zip": "psc_rot_image_b"},
	KindSwitchRot: {"archive-a.zip": "switch_rot_image_a", "archive-b.zip": "switch_rot_image_b"},
}

// checkPartsPresent: an OS composite needs its phase 2 image and a phase 1
// image for at least one board (tufaceous builds both boards today, older
// repositories may lack cosmo); an RoT composite needs both slots.
func checkPartsPresent(kind string, seen map[string]bool) error {
	var need [][]string
	switch kind {
	case KindHost, KindTrampoline:
		need = [][]string{{"image/zfs.img"}, {"image/gimlet.rom", "image/cosmo.rom"}}
	case KindGimletRot, KindPscRot, KindSwitchRot:
		need = [][]string{{"archive-a.zip"}, {"archive-b.zip"}}
	}
	for _, anyOf := range need {
		found := false
		for _, p := range anyOf {
			found = found || seen[p]
		}
		if !found {
			return compositeErr("", "%s composite lacks %s", kind, strings.Join(anyOf, " or "))
		}
	}
	return nil
}

// Caps on the small JSON documents inside composites and zones.
const maxOxideJSON = 64 << 10

// readBuffer is the read size under each gzip reader.
const readBuffer = 1 << 20

// maxZoneEntries caps the entries of one zone tarball: a zone image is a
// file tree, larger than a repository's entry count, and each entry costs
// only a header read (sizes are capped by Limits).
const maxZoneEntries = 500_000

// maxZoneLinks caps the symbolic links of one zone tarball, whose names are
// held while it is read.
const maxZoneLinks = 65_536

// Part is one image of a composite.
type Part struct {
	Path string // inner path, e.g. "image/zfs.img" or "zones/nexus.tar.gz"
	Kind string // derived kind, e.g. "host_phase_2", "gimlet_rot_image_a", "zone"
	Size int64  // length, from the tar header (the tar reader holds to it)
	// Name and Version of a zone, from its own oxide.json (pkg, version);
	// empty for other parts, which take their composite's.
	Name, Version string
}

// PartBody streams one part. Read yields exactly the part's bytes; once it
// has returned io.EOF, Part returns the part's description, or the reason
// the part is refused (for a zone: its tarball failed a check or has no
// usable oxide.json). Only valid during the SplitComposite callback.
type PartBody struct {
	r    io.Reader
	part Part
	zone *zoneScan // nil unless the part is a zone
	err  error     // sticky read error
}

// Size is the part's length, as its tar header declares it (the tar reader
// holds the content to it).
func (p *PartBody) Size() int64 { return p.part.Size }

func (p *PartBody) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.r.Read(b)
	if err != nil {
		p.err = err
		if p.zone != nil && err == io.EOF {
			p.zone.pw.Close()
		}
	}
	return n, err
}

// Part waits for the part's checks and returns its description. Call it
// after Read returned io.EOF; before, it fails.
func (p *PartBody) Part() (Part, error) {
	if p.err != io.EOF {
		return Part{}, compositeErr(p.part.Path, "part read before its end")
	}
	if p.zone == nil {
		return p.part, nil
	}
	info, err := p.zone.wait()
	if err != nil {
		return Part{}, err
	}
	out := p.part
	out.Name, out.Version = info.Pkg, info.Version
	return out, nil
}

func compositeErr(entry, format string, args ...any) error {
	return &Error{Check: CheckComposite, Entry: entry, Err: fmt.Errorf(format, args...)}
}

// oxideJSON is the oxide.json of a composite or a zone tarball.
type oxideJSON struct {
	V       *string `json:"v"`
	T       *string `json:"t"`
	Pkg     *string `json:"pkg"`
	Version *string `json:"version"`
}

func parseOxideJSON(entry string, b []byte) (oxideJSON, error) {
	var o oxideJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&o); err != nil {
		return o, compositeErr(entry, "oxide.json is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return o, compositeErr(entry, "data after the oxide.json document")
	}
	if o.V == nil || *o.V != "1" {
		return o, compositeErr(entry, `oxide.json: "v" must be "1"`)
	}
	if o.T == nil {
		return o, compositeErr(entry, `oxide.json: "t" (type) missing`)
	}
	return o, nil
}

// SplitComposite reads the v1 composite artifact of the given kind (a gzip
// tarball) from body in one pass, calling fn for each part as it streams
// by. Entries must be regular files (or directories) with clean names, the
// same caps as repository archives hold (lim: entries, expanded bytes,
// compression ratio), and oxide.json must carry the composite's type. A
// control plane's parts are its zones/ tarballs, each read while it streams
// for its own oxide.json (type "layer", pkg, version) and checked as an
// archive itself (no hard links, no links that leave the tarball, caps).
// Other kinds must hold their parts once (checkPartsPresent); unknown files
// are read and skipped, as Nexus skips them.
//
// fn must read the body to io.EOF and then call its Part method to learn
// the part's name and verdict; if fn returns early SplitComposite drains the
// part. Errors are fn's, ctx's, or *Error with Check "composite". It reads
// body to its end (so a verifying reader underneath sees it all).
func SplitComposite(ctx context.Context, kind string, body io.Reader, lim Limits, fn func(*PartBody) error) error {
	lim = lim.withDefaults()
	parts, fixed := compositeParts[kind]
	if !fixed && kind != KindControlPlane {
		return compositeErr("", "kind %q is not a composite", kind)
	}
	// Large reads from below (the gzip reader would read 4 KiB at a time).
	in, compressed := bufferedCount(body)
	zr, err := gzip.NewReader(in)
	if err != nil {
		return compositeErr("", "%s composite is not a gzip stream: %w", kind, err)
	}
	defer zr.Close()
	g := &guard{ctx: ctx, r: zr, lim: &lim, total: new(int64), compressed: compressed}
	tr := tar.NewReader(g)
	seen := map[string]bool{}
	sawType := false
	nparts := 0
	var declared int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if g.err != nil {
				return asComposite(g.err)
			}
			return compositeErr("", "%s composite: truncated or corrupt tar after %d entries: %w", kind, n, err)
		}
		if n >= lim.MaxEntries {
			return compositeErr(hdr.Name, "more than %d entries", lim.MaxEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return compositeErr(hdr.Name, "%w", err)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != '\x00' {
			return compositeErr(hdr.Name, "%s: not a regular file (type %q)", kind, hdr.Typeflag)
		}
		if seen[name] {
			return compositeErr(hdr.Name, "duplicate entry %q", name)
		}
		seen[name] = true
		declared += hdr.Size
		if hdr.Size < 0 || declared > lim.MaxExpandedSize || declared < 0 {
			return asComposite(tooLargeErr(hdr.Name, lim.MaxExpandedSize))
		}
		g.entry = hdr.Name

		if name == "oxide.json" {
			if hdr.Size > maxOxideJSON {
				return compositeErr(hdr.Name, "oxide.json is %d bytes, over the %d-byte cap", hdr.Size, maxOxideJSON)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return readComposite(g, hdr.Name, err)
			}
			o, err := parseOxideJSON(hdr.Name, b)
			if err != nil {
				return err
			}
			if want := compositeType(kind); *o.T != want {
				return compositeErr(hdr.Name, "oxide.json says type %q; a %s composite must say %q", *o.T, kind, want)
			}
			sawType = true
			continue
		}

		var p *PartBody
		switch {
		case fixed && parts[name] != "":
			p = &PartBody{r: tr, part: Part{Path: name, Kind: parts[name], Size: hdr.Size}}
		case !fixed && strings.HasPrefix(name, "zones/"):
			z := startZoneScan(ctx, name, lim)
			p = &PartBody{r: io.TeeReader(tr, z.pw), part: Part{Path: name, Kind: KindZone, Size: hdr.Size}, zone: z}
		default:
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return readComposite(g, hdr.Name, err)
			}
			continue
		}
		nparts++
		err = fn(p)
		if err == nil {
			// Read what fn left, so the part's checks run to their end.
			if _, derr := io.Copy(io.Discard, p); derr != nil {
				err = derr
			}
		}
		var zerr error
		if p.zone != nil {
			p.zone.pw.CloseWithError(errPartAbandoned)
			_, zerr = p.zone.wait()
		}
		if err == nil && zerr != nil {
			return zerr
		}
		if err != nil {
			if g.err != nil {
				return asComposite(g.err)
			}
			if p.err != nil && p.err != io.EOF {
				return readComposite(g, hdr.Name, p.err)
			}
			return err
		}
	}
	if !sawType {
		return compositeErr("", "%s composite has no oxide.json", kind)
	}
	if err := checkPartsPresent(kind, seen); err != nil {
		return err
	}
	if !fixed && nparts == 0 {
		return compositeErr("", "control_plane composite holds no zones/ tarball")
	}
	// The rest of the gzip stream: tar padding at most.
	rest, err := io.Copy(io.Discard, io.LimitReader(g, maxTrailing+1))
	if err != nil {
		return readComposite(g, "", err)
	}
	if rest > maxTrailing {
		return compositeErr("", "more than %d bytes after the tar archive", maxTrailing)
	}
	return nil
}

// bufferedCount buffers r for an inflater and counts the compressed bytes
// the inflater has taken (read from r, less what waits in the buffer), so
// the ratio check is not loosened by read-ahead.
func bufferedCount(r io.Reader) (*bufio.Reader, func() int64) {
	c := &countReader{r: r}
	br := bufio.NewReaderSize(c, readBuffer)
	return br, func() int64 { return c.n - int64(br.Buffered()) }
}

// asComposite re-labels an archive-limit error met inside a composite.
func asComposite(err error) error {
	var te *Error
	if errors.As(err, &te) && te.Check == CheckArchive {
		te.Check = CheckComposite
	}
	return err
}

func readComposite(g *guard, entry string, err error) error {
	if g.err != nil {
		return asComposite(g.err)
	}
	return asComposite(readErr(entry, err))
}

// zoneScan reads a zone tarball (gzip tar) from a pipe while the zone
// streams to the store, checking it and finding its oxide.json.
type zoneScan struct {
	pw   *io.PipeWriter
	done chan struct{}
	info zoneInfo
	err  error
}

type zoneInfo struct{ Pkg, Version string }

// errZoneRead tells a writer that the zone was read to its end and anything
// more is refused.
var errZoneRead = errors.New("zone tarball already read to its end")

// errPartAbandoned ends a zone's scan when its part was not read to its end.
var errPartAbandoned = errors.New("part abandoned before its end")

func startZoneScan(ctx context.Context, entry string, lim Limits) *zoneScan {
	pr, pw := io.Pipe()
	z := &zoneScan{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(z.done)
		z.info, z.err = scanZone(ctx, entry, pr, lim)
		// Unblock the writer whatever happened.
		pr.CloseWithError(firstErr(z.err, errZoneRead))
	}()
	return z
}

func (z *zoneScan) wait() (zoneInfo, error) {
	<-z.done
	return z.info, z.err
}

// scanZone checks one zone tarball and returns its oxide.json's pkg and
// version. Nothing is extracted; links are refused only when they could
// reach outside the tarball, as a sled unpacking the zone would follow them.
func scanZone(ctx context.Context, entry string, r io.Reader, lim Limits) (zoneInfo, error) {
	in, compressed := bufferedCount(r)
	zr, err := gzip.NewReader(in)
	if err != nil {
		return zoneInfo{}, compositeErr(entry, "zone is not a gzip stream: %w", err)
	}
	defer zr.Close()
	g := &guard{ctx: ctx, r: zr, lim: &lim, total: new(int64), compressed: compressed, entry: entry}
	tr := tar.NewReader(g)
	var info *zoneInfo
	var declared int64
	links := map[string]bool{} // symbolic links seen so far
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if g.err != nil {
				return zoneInfo{}, zoneErr(entry, g.err)
			}
			return zoneInfo{}, compositeErr(entry, "zone: truncated or corrupt tar after %d entries: %w", n, err)
		}
		if n >= maxZoneEntries {
			return zoneInfo{}, compositeErr(entry, "zone holds more than %d entries", maxZoneEntries)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return zoneInfo{}, compositeErr(entry, "zone entry: %w", err)
		}
		// An entry below a symbolic link would be written wherever the
		// link points; links to links defeat any check of the link alone.
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if links[dir] {
				return zoneInfo{}, compositeErr(entry, "zone entry %q lies below the symbolic link %q", name, dir)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeReg, '\x00':
		case tar.TypeDir, tar.TypeXGlobalHeader:
			continue
		case tar.TypeSymlink:
			if !linkStaysInside(name, hdr.Linkname) {
				return zoneInfo{}, compositeErr(entry, "zone entry %q: symbolic link leaving the zone image", name)
			}
			if len(links) >= maxZoneLinks {
				return zoneInfo{}, compositeErr(entry, "zone holds more than %d symbolic links", maxZoneLinks)
			}
			links[name] = true
			continue
		case tar.TypeLink:
			return zoneInfo{}, compositeErr(entry, "zone entry %q: hard link", name)
		default:
			return zoneInfo{}, compositeErr(entry, "zone entry %q: unsupported entry type %q", name, hdr.Typeflag)
		}
		declared += hdr.Size
		if hdr.Size < 0 || declared > lim.MaxExpandedSize || declared < 0 {
			return zoneInfo{}, compositeErr(entry, "zone declares more than %d bytes", lim.MaxExpandedSize)
		}
		if name != "oxide.json" {
			continue // tar skips the content, through the guard
		}
		if info != nil {
			return zoneInfo{}, compositeErr(entry, "zone holds two oxide.json")
		}
		if hdr.Size > maxOxideJSON {
			return zoneInfo{}, compositeErr(entry, "zone oxide.json is %d bytes, over the %d-byte cap", hdr.Size, maxOxideJSON)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return zoneInfo{}, zoneErr(entry, firstErr(g.err, err))
		}
		o, err := parseOxideJSON(entry, b)
		if err != nil {
			return zoneInfo{}, err
		}
		if *o.T != "layer" {
			return zoneInfo{}, compositeErr(entry, `zone oxide.json says type %q, not "layer"`, *o.T)
		}
		if o.Pkg == nil || *o.Pkg == "" || o.Version == nil || *o.Version == "" {
			return zoneInfo{}, compositeErr(entry, "zone oxide.json lacks pkg or version")
		}
		info = &zoneInfo{Pkg: *o.Pkg, Version: *o.Version}
	}
	// The gzip stream's end (its checksum is checked there), and nothing
	// after it but padding.
	rest, err := io.Copy(io.Discard, io.LimitReader(g, maxTrailing+1))
	if err != nil {
		return zoneInfo{}, zoneErr(entry, firstErr(g.err, err))
	}
	if rest > maxTrailing {
		return zoneInfo{}, compositeErr(entry, "zone: more than %d bytes after the tar archive", maxTrailing)
	}
	if info == nil {
		return zoneInfo{}, compositeErr(entry, "zone has no oxide.json")
	}
	return *info, nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func zoneErr(entry string, err error) error {
	var te *Error
	if errors.As(err, &te) {
		return asComposite(err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return compositeErr(entry, "zone: truncated or corrupt: %w", err)
}

// linkStaysInside reports whether a symbolic link at name pointing to
// target resolves inside the tarball's root.
func linkStaysInside(name, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsRune(target, 0) {
		return false
	}
	resolved := path.Join(path.Dir(name), target)
	return resolved != ".." && !strings.HasPrefix(resolved, "../")
}
