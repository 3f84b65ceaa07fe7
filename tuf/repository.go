package tuf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"github.com/klauspost/compress/zip"
)

// Target is a verified TUF target: its path in the repository and its signed
// length and sha256.
type Target struct {
	Path   string // TUF target path, e.g. "artifacts.json" or "zone1.tar.gz"
	Length int64
	SHA256 [32]byte
}

// Repository is a verified repository archive. It holds the archive's
// metadata and manifest in memory, never target content.
//
// A Repository is immutable and safe for concurrent use, provided the
// io.ReaderAt given to Open is; that reader must stay readable (and
// unchanged) while the Repository is used.
type Repository struct {
	ar          *archive
	rootVersion int64
	targets     []*resolvedTarget          // sorted by path
	order       []*resolvedTarget          // archive order
	byPath      map[string]*resolvedTarget // path -> target
	byEntry     map[string]*resolvedTarget // cleaned entry name -> target
	manifest    *Manifest
	manifestErr error
}

// Open reads the archive at r (size bytes), checks every entry, loads the
// metadata into memory and verifies the repository against each trusted
// root (root.json documents) in turn, keeping the first that verifies.
//
// The format (zip, tar, tar.gz, tar.zst) is found from the content. A
// hostile or malformed archive fails with an *Error (Check "archive" or
// "layout"); a repository no trusted root verifies fails with an error
// saying so, wrapping the *Error of the root that got furthest. Either way
// errors.Is(err, ErrInvalid) holds, and errors.Is(err, ErrTooLarge) when
// Limits.MaxExpandedSize is exceeded. A cancelled ctx returns ctx.Err().
//
// Open reads each target's declared size but not its content, except
// artifacts.json, whose signed hash it checks; WalkTargets checks the others.
// For tar.gz and tar.zst that means one full decompression pass.
func Open(ctx context.Context, r io.ReaderAt, size int64, trustedRoots [][]byte, opts Options) (*Repository, error) {
	lim := opts.Limits.withDefaults()
	if len(trustedRoots) == 0 {
		return nil, &Error{Check: CheckRoot, Err: errors.New("no trusted root given")}
	}
	a, err := scan(ctx, r, size, lim)
	if err != nil {
		return nil, err
	}
	lay, err := findLayout(a)
	if err != nil {
		return nil, err
	}
	ref := time.Now()
	if opts.Now != nil {
		ref = opts.Now()
	}
	if opts.AllowExpired {
		ref = time.Time{} // before every expiry: go-tuf never sees one
	}

	var res *verified
	var best error
	bestRank := -1
	for _, root := range trustedRoots {
		v, stage, err := verify(ctx, lay, ref, root)
		if err == nil {
			res = v
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The root that got furthest failed for the most telling reason;
		// at the same stage, a signature failure only says "not this root".
		rank := 2 * stage
		var te *Error
		if errors.As(err, &te) && te.Check != CheckSignature && te.Check != CheckThreshold {
			rank++
		}
		if rank >= bestRank {
			best, bestRank = err, rank
		}
	}
	if res == nil {
		return nil, fmt.Errorf("tuf: no trusted root verifies the repository (%d tried): %w", len(trustedRoots), best)
	}

	repo := &Repository{
		ar:          a,
		rootVersion: res.rootVersion,
		targets:     res.targets,
		byPath:      make(map[string]*resolvedTarget, len(res.targets)),
		byEntry:     make(map[string]*resolvedTarget, len(res.targets)),
	}
	for _, t := range res.targets {
		e, err := lay.locate(t, res.consistent)
		if err != nil {
			return nil, err
		}
		if other := repo.byEntry[e.name]; other != nil {
			return nil, layoutErr(e.raw, "targets %q and %q share one archive entry", other.Path, t.Path)
		}
		t.entry = e
		repo.byPath[t.Path] = t
		repo.byEntry[e.name] = t
	}
	repo.order = append([]*resolvedTarget(nil), res.targets...)
	sort.Slice(repo.order, func(i, j int) bool { return repo.order[i].entry.index < repo.order[j].entry.index })

	if err := repo.loadManifest(lim); err != nil {
		return nil, err
	}
	return repo, nil
}

// loadManifest checks the manifest (artifacts-v2.json, else artifacts.json)
// against its signed hash (a mismatch fails Open) and parses it (a bad
// manifest fails only Manifest).
func (r *Repository) loadManifest(lim Limits) error {
	name, parse := ManifestTarget, ParseManifest
	t := r.byPath[ManifestTarget]
	if v2 := r.byPath[ManifestV2Target]; v2 != nil {
		// As tufaceous loads them: v2 first, artifacts.json only without it.
		name, parse, t = ManifestV2Target, ParseManifestV2, v2
	}
	if t == nil {
		r.manifestErr = ErrNoManifest
		return nil
	}
	e := t.entry
	if !e.held {
		r.manifestErr = &Error{Check: CheckManifest, Entry: e.raw,
			Err: fmt.Errorf("%s is %d bytes, over the %d-byte cap", name, e.size, lim.MaxMetadataSize)}
		return nil
	}
	vr := newVerifyReader(t, bytes.NewReader(e.data))
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return err
	}
	m, err := parse(e.data)
	if err == nil {
		err = resolveManifest(m, r.byPath)
	}
	if err != nil {
		var me *Error
		if errors.As(err, &me) {
			me.Entry = e.raw
		}
		r.manifestErr = err
		return nil
	}
	r.manifest = m
	return nil
}

// Targets returns every verified target, top-level and delegated, sorted by
// path. The slice is the caller's.
func (r *Repository) Targets() []Target {
	out := make([]Target, len(r.targets))
	for i, t := range r.targets {
		out[i] = t.Target
	}
	return out
}

// Manifest returns the parsed manifest — artifacts-v2.json if the
// repository has it, else artifacts.json — each artifact resolved to its
// target's length and sha256. It returns ErrNoManifest if the repository
// has neither target, and an *Error with Check "manifest" if the
// manifest is malformed, too large, names a target the repository lacks, or
// lists the same (kind, name, version) or the same kind and content twice.
// The result is the caller's to modify.
func (r *Repository) Manifest() (*Manifest, error) {
	if r.manifestErr != nil {
		return nil, r.manifestErr
	}
	return r.manifest.clone(), nil
}

// RootVersion returns the version of the root that verified the repository:
// the trusted root's, or the last N.root.json the archive rotated to.
func (r *Repository) RootVersion() int64 { return r.rootVersion }

// WalkTargets streams every target's content once, in archive order, calling
// fn with a reader that yields exactly the target's bytes. At the end of the
// content the reader returns io.EOF, or instead an *Error with Check "hash"
// or "length" if the content differs from the signed metadata; reading past
// the signed length fails at once.
//
// Nothing is held in memory whole; tar.gz and tar.zst are decompressed in
// one sequential pass. The body is only valid during fn. If fn returns an
// error the walk stops and returns it. If fn returns nil without reading the
// body to its end, WalkTargets reads the rest and still fails on a mismatch,
// so a nil result means every target matched. It may be called any number
// of times, concurrently.
func (r *Repository) WalkTargets(ctx context.Context, fn func(t Target, body io.Reader) error) error {
	if r.ar.format == formatZip {
		total := new(int64)
		for _, t := range r.order {
			if err := ctx.Err(); err != nil {
				return err
			}
			rc, err := r.ar.openZip(ctx, t.entry, total)
			if err != nil {
				return err
			}
			err = visit(t, rc, fn)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	seen := 0
	err := r.ar.walkTar(ctx, newIndex(r.ar.lim), func(e *entry, body io.Reader) error {
		t := r.byEntry[e.name]
		if t == nil {
			return nil
		}
		if e.size != t.Length { // only if the archive changed since Open
			return &Error{Check: CheckLength, Role: t.role, Entry: e.raw,
				Err: fmt.Errorf("target %q: entry holds %d bytes, signed length is %d", t.Path, e.size, t.Length)}
		}
		seen++
		return visit(t, body, fn)
	})
	if err != nil {
		return err
	}
	if seen != len(r.order) {
		return layoutErr("", "%d targets missing from the archive (changed since Open?)", len(r.order)-seen)
	}
	return nil
}

func visit(t *resolvedTarget, body io.Reader, fn func(Target, io.Reader) error) error {
	vr := newVerifyReader(t, body)
	if err := fn(t.Target, vr); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, vr)
	return err
}

// verifyReader yields a target's content, hashing it, and turns the end of
// the content into the verdict.
type verifyReader struct {
	r    io.Reader
	t    *resolvedTarget
	h256 hash.Hash
	h512 hash.Hash // nil unless sha512 was signed
	n    int64
	err  error // sticky; io.EOF once the content matched
}

func newVerifyReader(t *resolvedTarget, r io.Reader) *verifyReader {
	v := &verifyReader{r: r, t: t, h256: sha256.New()}
	if t.sha512 != nil {
		v.h512 = sha512.New()
	}
	return v
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Ask for at most one byte past the signed length: enough to see an
	// overlong body without reading it.
	if room := v.t.Length - v.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := v.r.Read(p)
	if v.n+int64(n) > v.t.Length {
		n = int(v.t.Length - v.n)
		v.write(p[:n])
		v.err = v.mismatch(CheckLength, fmt.Errorf("target %q is longer than its signed length %d", v.t.Path, v.t.Length))
		return n, v.err
	}
	v.write(p[:n])
	switch {
	case err == nil:
	case err == io.EOF:
		v.err = v.verdict()
	case errors.Is(err, zip.ErrChecksum):
		// The zip CRC disagrees; the signed hash says more, if it disagrees too.
		if v.err = v.verdict(); v.err == io.EOF {
			v.err = archiveErr(v.t.entry.raw, "zip checksum error")
		}
	default:
		v.err = readErr(v.t.entry.raw, err)
	}
	return n, v.err
}

func (v *verifyReader) write(p []byte) {
	v.n += int64(len(p))
	if v.h256 != nil { // nil: the caller checks sha256 (SkipSHA256)
		v.h256.Write(p)
	}
	if v.h512 != nil {
		v.h512.Write(p)
	}
}

// verdict compares what was read with the signed length and hashes.
func (v *verifyReader) verdict() error {
	if v.n != v.t.Length {
		return v.mismatch(CheckLength, fmt.Errorf("target %q is %d bytes, signed length is %d", v.t.Path, v.n, v.t.Length))
	}
	if v.h256 != nil { // nil: the caller checks sha256 (SkipSHA256)
		if sum := v.h256.Sum(nil); !bytes.Equal(sum, v.t.SHA256[:]) {
			return v.mismatch(CheckHash, fmt.Errorf("target %q has sha256 %x, signed %x", v.t.Path, sum, v.t.SHA256))
		}
	}
	if v.h512 != nil {
		if sum := v.h512.Sum(nil); !bytes.Equal(sum, v.t.sha512) {
			return v.mismatch(CheckHash, fmt.Errorf("target %q has sha512 %x, signed %x", v.t.Path, sum, v.t.sha512))
		}
	}
	return io.EOF
}

func (v *verifyReader) mismatch(check string, err error) error {
	out := &Error{Check: check, Role: v.t.role, Err: err}
	if v.t.entry != nil {
		out.Entry = v.t.entry.raw
	}
	return out
}
