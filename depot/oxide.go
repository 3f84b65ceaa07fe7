package depot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"depot/store"
	"depot/tuf"
)

// Oxide repositories (built by tufaceous) are recorded as Nexus records
// them: v1 composites (host, trampoline, RoT, control plane tarballs) are
// split at upload and their parts recorded in their place, Hubris images
// carry their caboose's board and sign, v2 artifacts keep their tags, and
// omicron's per-repository rules on kinds and versions hold. Any other
// repository is recorded as it always was.

// ArtifactSource names the composite artifact a part was split from; the
// part's integrity comes from the composite's signed hash.
type ArtifactSource struct {
	Name    string       `json:"name"`
	Version string       `json:"version"`
	Kind    string       `json:"kind"`
	Hash    store.Digest `json:"hash"`
	Path    string       `json:"path"` // the part's path inside the composite
}

// tufaceousV1Kinds are the artifact kinds of tufaceous v1 manifests; a v1
// manifest using any of them is an Oxide repository.
var tufaceousV1Kinds = map[string]bool{
	"gimlet_sp": true, "gimlet_rot": true, "gimlet_rot_bootloader": true,
	"psc_sp": true, "psc_rot": true, "psc_rot_bootloader": true,
	"switch_sp": true, "switch_rot": true, "switch_rot_bootloader": true,
	"host": true, "trampoline": true, "control_plane": true,
	"installinator_document": true, "measurement_corpus": true,
}

// oxideShaped reports whether a manifest describes an Oxide repository.
func oxideShaped(m *tuf.Manifest) bool {
	if m.Format == tuf.FormatV2 {
		return true
	}
	for _, a := range m.Artifacts {
		if tufaceousV1Kinds[a.Kind] {
			return true
		}
	}
	return false
}

// Hubris image classes, by derived kind.
const (
	hubrisSP         = "sp"
	hubrisRoT        = "rot"
	hubrisBootloader = "rot_bootloader"
)

func hubrisClass(kind string) string {
	switch {
	case kind == "sp" || strings.HasSuffix(kind, "_sp"):
		return hubrisSP
	case kind == "rot_bootloader" || strings.HasSuffix(kind, "_rot_bootloader"):
		return hubrisBootloader
	case strings.HasSuffix(kind, "rot_image_a") || strings.HasSuffix(kind, "rot_image_b"):
		return hubrisRoT
	}
	return ""
}

// boardFromTags fills board and sign from a v2 artifact's tags.
func boardFromTags(a *RepoArtifact) bool {
	for _, k := range []string{"sp_board", "rot_board"} {
		if b := a.Tags[k]; b != "" {
			a.Board = b
			a.Sign = a.Tags["rot_rkth"]
			return true
		}
	}
	return false
}

// pendingStore is what splitting needs of the local store: content
// written under the hash it turns out to have, published later.
type pendingStore interface {
	PutPending(ctx context.Context, body io.Reader, size int64) (*store.Pending, error)
}

var _ pendingStore = (*store.Store)(nil)

// StagePending writes a part whose hash is known only once it is read, and
// publishes nothing until the caller commits it (see store.Store.PutPending).
// The caller protects the part before it commits.
func (s *Sled) StagePending(ctx context.Context, body io.Reader, size int64) (*store.Pending, error) {
	ps, ok := s.st.(pendingStore)
	if !ok {
		return nil, errors.New("the local store cannot store split artifacts")
	}
	return ps.PutPending(ctx, body, size)
}

// splitter splits the composites of one upload into the local store.
type splitter struct {
	c      *Coordinator
	s      *Saga
	lim    tuf.Limits
	staged *[]store.Digest // what the saga protected; grows with each composite
	parts  []RepoArtifact
}

// eofReader notes whether its reader said io.EOF: for a verified target
// body, that the content matched its signed hash and length.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

// split streams one composite (the verified target body) into its parts.
// The parts wait unpublished in temp files until the composite has been
// read to its end and matched its signed hash; then they are logged in the
// saga, protected, and published. Nothing of a composite that fails is
// ever visible.
func (sp *splitter) split(ctx context.Context, comp RepoArtifact, body io.Reader) error {
	var pending []*store.Pending
	defer func() {
		for _, p := range pending {
			p.Abort() // no-op once committed
		}
	}()
	var parts []RepoArtifact
	vr := &eofReader{r: body}
	err := tuf.SplitComposite(ctx, comp.Kind, vr, sp.lim, func(pb *tuf.PartBody) error {
		p, err := sp.c.local.StagePending(ctx, pb, pb.Size())
		if err != nil {
			return err
		}
		pending = append(pending, p)
		part, err := pb.Part()
		if err != nil {
			return err
		}
		a := RepoArtifact{Name: comp.Name, Version: comp.Version, Kind: part.Kind, Hash: p.Digest(), Size: p.Size(),
			Source: &ArtifactSource{Name: comp.Name, Version: comp.Version, Kind: comp.Kind, Hash: comp.Hash, Path: part.Path}}
		if part.Kind == tuf.KindZone {
			a.Name, a.Version = part.Name, part.Version
		}
		parts = append(parts, a)
		return nil
	})
	if err == nil && !vr.eof {
		// SplitComposite reads to the end; make sure the verdict was seen.
		if _, err = io.Copy(io.Discard, vr); err == nil && !vr.eof {
			err = errors.New("composite not read to its end")
		}
	}
	if err != nil {
		return err
	}
	digests := make([]store.Digest, len(pending))
	for i, p := range pending {
		digests[i] = p.Digest()
	}
	// Protected and logged before they are published, so the reconciler
	// leaves them, undo finds them, and undo keeps those already present.
	present := sp.c.local.Protect(ctx, digests)
	*sp.staged = append(*sp.staged, digests...)
	if err := sp.c.step(ctx, sp.s, func(s *Saga) {
		s.Staged = append(s.Staged, digests...)
		s.Present = append(s.Present, present...)
	}); err != nil {
		return err
	}
	for _, p := range pending {
		if _, err := p.Commit(); err != nil {
			return fmt.Errorf("stage %s part %s: %w", comp.Kind, p.Digest(), err)
		}
	}
	sp.parts = append(sp.parts, parts...)
	return nil
}

// readCabooses fills board and sign of every Hubris image from its staged
// copy (or its v2 tags) and drops lab SP images, as Nexus does.
func (c *Coordinator) readCabooses(ctx context.Context, arts []RepoArtifact) ([]RepoArtifact, error) {
	out := arts[:0]
	for _, a := range arts {
		class := hubrisClass(a.Kind)
		if class == "" || boardFromTags(&a) {
			out = append(out, a)
			continue
		}
		cab, err := c.caboose(ctx, a.Hash)
		if errors.Is(err, errLocalRead) {
			return nil, fmt.Errorf("caboose of %s %s %s: %w", a.Kind, a.Name, a.Version, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s %s: %w", ErrRepoInvalid, a.Kind, a.Name, a.Version, err)
		}
		if class == hubrisSP && cab.Lab() {
			c.log.Info("skipping lab SP image", "kind", a.Kind, "name", a.Name, "board", cab.Board, "image_name", cab.Name)
			continue
		}
		a.Board = cab.Board
		if class != hubrisSP {
			a.Sign = cab.Sign
		}
		out = append(out, a)
	}
	return out, nil
}

func (c *Coordinator) caboose(ctx context.Context, d store.Digest) (tuf.Caboose, error) {
	b, err := c.local.openStaged(ctx, d)
	if err != nil {
		return tuf.Caboose{}, fmt.Errorf("%w: %w", errLocalRead, err)
	}
	defer b.File.Close()
	ra, ok := b.File.(io.ReaderAt)
	if !ok {
		ra = &seekReaderAt{rs: b.File}
	}
	lr := &localReader{r: ra}
	cab, err := tuf.ReadHubrisCaboose(lr, b.Size)
	if rerr := lr.failed(); rerr != nil {
		return tuf.Caboose{}, rerr
	}
	return cab, err
}

// seekReaderAt reads at offsets by seeking, for a store file that is not an
// io.ReaderAt. Not safe for concurrent use (the caboose reader is serial).
type seekReaderAt struct{ rs io.ReadSeeker }

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(s.rs, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF // as io.ReaderAt says for a short read at the end
	}
	return n, err
}

// kindRule is a 400 naming the omicron rule an Oxide repository breaks.
func kindRule(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrRepoInvalid, tuf.CheckKind, fmt.Sprintf(format, args...))
}

// checkOxideRules applies omicron's per-repository rules to an Oxide
// repository's record: version syntax; at most one host, trampoline,
// control plane and installinator document; one phase 1 image per board;
// one zone per name; one SP version per kind and one image per (kind,
// board); one RoT version per (kind, SIGN); no content twice in a kind.
func checkOxideRules(rec Repo, composites []RepoArtifact) error {
	for _, a := range append(append([]RepoArtifact(nil), rec.Artifacts...), composites...) {
		if !tuf.VersionRE.MatchString(a.Version) {
			return kindRule("artifact %s (kind %s) has version %q; versions must match %s", a.Name, a.Kind, a.Version, tuf.VersionRE)
		}
	}
	single := map[string]string{
		"host_phase_2": "host", "trampoline_phase_2": "trampoline",
		"installinator_document": "installinator document",
	}
	counts := map[string][]string{}
	for _, a := range composites {
		if a.Kind == tuf.KindControlPlane || a.Kind == tuf.KindHost || a.Kind == tuf.KindTrampoline {
			counts["composite:"+a.Kind] = append(counts["composite:"+a.Kind], a.Name+" "+a.Version)
		}
	}
	for _, a := range rec.Artifacts {
		if _, ok := single[a.Kind]; ok || strings.HasSuffix(a.Kind, "_phase_1") {
			counts[a.Kind] = append(counts[a.Kind], a.Name+" "+a.Version)
		}
		if a.Kind == tuf.KindZone {
			counts["zone:"+a.Name] = append(counts["zone:"+a.Name], a.Name+" "+a.Version)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := counts[k]; len(v) > 1 {
			what := single[k]
			switch {
			case strings.HasPrefix(k, "composite:"):
				what = strings.TrimPrefix(k, "composite:")
			case strings.HasPrefix(k, "zone:"):
				what = "zone named " + strings.TrimPrefix(k, "zone:")
			case what == "":
				what = k + " image"
			}
			return kindRule("at most one %s per repository; this one has %s", what, strings.Join(v, " and "))
		}
	}

	type kb struct{ kind, board string }
	spVersion := map[string]RepoArtifact{}
	spBoard := map[kb]RepoArtifact{}
	rotVersion := map[kb]RepoArtifact{}
	type kh struct {
		kind string
		hash store.Digest
	}
	content := map[kh]RepoArtifact{}
	for _, a := range rec.Artifacts {
		if o, ok := content[kh{a.Kind, a.Hash}]; ok && (o.Name != a.Name || o.Version != a.Version) {
			return kindRule("kind %s holds the same content (sha256 %s) as %s %s and as %s %s", a.Kind, a.Hash, o.Name, o.Version, a.Name, a.Version)
		}
		content[kh{a.Kind, a.Hash}] = a
		switch hubrisClass(a.Kind) {
		case hubrisSP:
			if o, ok := spVersion[a.Kind]; ok && o.Version != a.Version {
				return kindRule("one SP version per kind: %s has %s (%s) and %s (%s)", a.Kind, o.Version, o.Name, a.Version, a.Name)
			}
			spVersion[a.Kind] = a
			if o, ok := spBoard[kb{a.Kind, a.Board}]; ok {
				return kindRule("one SP image per kind and board: %s board %s has %s %s and %s %s", a.Kind, a.Board, o.Name, o.Version, a.Name, a.Version)
			}
			spBoard[kb{a.Kind, a.Board}] = a
		case hubrisRoT, hubrisBootloader:
			family := strings.TrimSuffix(strings.TrimSuffix(a.Kind, "_image_a"), "_image_b")
			if o, ok := rotVersion[kb{family, a.Sign}]; ok && o.Version != a.Version {
				return kindRule("one RoT version per kind and SIGN: %s signed %q has %s and %s", family, a.Sign, o.Version, a.Version)
			}
			rotVersion[kb{family, a.Sign}] = a
		}
	}
	return nil
}
