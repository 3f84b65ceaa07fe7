package depot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"depot/depot/randid"
	"depot/store"
	"depot/tuf"
)

// Upload statuses.
const (
	UploadInserted      = "inserted"
	UploadAlreadyExists = "already_exists"
)

// UploadResult is what an upload did.
type UploadResult struct {
	Repo   Repo   `json:"repo"`
	Status string `json:"status"`
}

// Upload runs the upload saga for one repository archive: spool body to a
// temp file on a mirror while hashing it, verify it against the trusted
// roots, stage its artifacts into the local store (each hash-checked while
// it streams), record it in the catalog (raising the generation), then
// hand it to replication. size is the declared length or -1.
// systemVersion is required only for a repository without artifacts.json.
//
// The same archive again is UploadAlreadyExists with nothing rewritten.
// Errors: ErrRepoInvalid (wrapping the tuf *Error that says which check
// failed), ErrRepoConflict, tuf.ErrTooLarge, store errors. A failed upload
// leaves nothing behind: no spool file, no staged artifacts that no
// repository references, no catalog rows (its saga is marked undone).
//
// e, if not nil, is the request's audit entry: recording the repository
// appends its record in the same transaction.
func (c *Coordinator) Upload(ctx context.Context, fileName, systemVersion string, body io.Reader, size int64, e *AuditEntry) (UploadResult, error) {
	id := randid.New()
	spool, err := c.spool.CreateSpool("upload-")
	if err != nil {
		return UploadResult{}, fmt.Errorf("upload %s: %w", fileName, err)
	}
	// Marked running before it is logged, so a Recover that runs meanwhile
	// never takes this live saga for a crashed one.
	c.mu.Lock()
	c.running[id] = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.running, id)
		c.mu.Unlock()
	}()
	s := Saga{ID: id, Step: StepSpool, FileName: fileName, SpoolPath: spool.Name(), Sled: c.selfSled}
	if err := c.cat.BeginSaga(ctx, s); err != nil {
		spool.Close()
		os.Remove(spool.Name())
		return UploadResult{}, fmt.Errorf("upload %s: begin saga: %w", fileName, err)
	}

	start := time.Now()
	res, staged, err := c.runUpload(ctx, &s, spool, systemVersion, body, size, e)
	spool.Close()
	if rerr := os.Remove(spool.Name()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		c.log.Warn("remove upload spool", "path", spool.Name(), "err", rerr)
	}
	// The saga holds a protection on what it staged until here: after
	// record the config keeps them, before it undo may drop them.
	if err != nil {
		// Cleanup must run even if the client has gone.
		cctx := context.WithoutCancel(ctx)
		c.local.Unprotect(staged)
		if uerr := c.undo(cctx, s, err); uerr != nil {
			c.log.Error("undo failed upload", "saga", id, "err", uerr)
		}
		// Hidden until undo is over, so nothing it deletes was served.
		c.local.Unstage(fresh(s))
		c.log.Warn("upload refused", "saga", id, "file_name", fileName, "err", err)
		return UploadResult{}, err
	}
	c.local.Unprotect(staged)
	c.local.Unstage(fresh(s))
	if err := c.cat.UpdateSaga(ctx, id, func(s *Saga) { s.Step = StepDone; s.SpoolPath = "" }); err != nil {
		c.log.Error("mark saga done", "saga", id, "err", err)
	}
	c.log.Info("upload done", "saga", id, "file_name", fileName, "system_version", res.Repo.SystemVersion,
		"status", res.Status, "artifacts", len(res.Repo.Artifacts), "duration", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// errLocalRead is what tuf sees when reading a file of this server (the
// spool, a staged artifact) fails: the archive is not at fault, and the
// failure's text (which names the file's path) must not reach the client
// as a check that failed.
var errLocalRead = errors.New("reading a file on this server failed")

// localReader reads a local file for tuf and keeps the first read error, so
// the upload reports it as the server's fault, not REPOSITORY_INVALID.
type localReader struct {
	r   io.ReaderAt
	mu  sync.Mutex
	err error
}

func (s *localReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
		return n, errLocalRead
	}
	return n, err
}

// failed returns the first read error, wrapped for the log and the status
// (a 5xx, whose message is the server's own), or nil.
func (s *localReader) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errLocalRead, s.err)
}

// runUpload does the saga's steps; s is kept up to date with the log.
// staged is what it protected in the local sled (the caller releases it).
func (c *Coordinator) runUpload(ctx context.Context, s *Saga, spool *os.File, systemVersion string, body io.Reader, size int64, e *AuditEntry) (_ UploadResult, staged []store.Digest, _ error) {
	// Spool: hash while writing, never hold the archive in memory.
	c.reached(StepSpool)
	n, hash, err := c.spool.SpoolFrom(ctx, spool, body)
	if err != nil {
		return UploadResult{}, nil, fmt.Errorf("spool upload: %w", err)
	}
	if size >= 0 && n != size {
		return UploadResult{}, nil, fmt.Errorf("spool upload: read %d bytes, declared %d: %w", n, size, store.ErrSizeMismatch)
	}
	if existing, err := c.cat.RepoByHash(ctx, hash); err == nil {
		return UploadResult{Repo: existing, Status: UploadAlreadyExists}, nil, nil
	}
	if err := c.step(ctx, s, func(s *Saga) { s.Step = StepVerify; s.ArchiveHash = &hash }); err != nil {
		return UploadResult{}, nil, err
	}

	// Verify.
	c.reached(StepVerify)
	roots, err := c.cat.TrustRoots(ctx)
	if err != nil {
		return UploadResult{}, nil, err
	}
	if len(roots) == 0 {
		return UploadResult{}, nil, fmt.Errorf("%w: root: no trusted root is configured; add one with POST /v1/system/update/trust-roots or --trusted-root", ErrRepoInvalid)
	}
	docs := make([][]byte, len(roots))
	for i, r := range roots {
		docs[i] = r.Root
	}
	sr := &localReader{r: spool}
	repo, err := tuf.Open(ctx, sr, n, docs, c.tuf)
	if err != nil {
		if rerr := sr.failed(); rerr != nil {
			return UploadResult{}, nil, rerr
		}
		return UploadResult{}, nil, invalid(err)
	}
	rec, composites, err := repoRecord(repo, hash, s.FileName, systemVersion)
	if err != nil {
		return UploadResult{}, nil, err
	}
	if existing, err := c.cat.CheckRepo(ctx, rec); err != nil {
		return UploadResult{}, nil, err
	} else if existing != nil {
		return UploadResult{Repo: *existing, Status: UploadAlreadyExists}, nil, nil
	}

	// Stage: the log names every artifact before any is written, so undo
	// knows what to look for.
	want := make(map[store.Digest]int64)
	for _, a := range rec.Artifacts {
		want[a.Hash] = a.Size
	}
	for d := range want {
		staged = append(staged, d)
	}
	// Protected first, so the log says which were present already.
	present := c.local.Protect(ctx, staged)
	if err := c.step(ctx, s, func(s *Saga) {
		s.Step = StepStage
		s.SystemVersion = rec.SystemVersion
		s.Staged, s.Present = staged, present
	}); err != nil {
		return UploadResult{}, staged, err
	}
	done := make(map[store.Digest]bool)
	sp := &splitter{c: c, s: s, lim: c.tuf.Limits, staged: &staged}
	err = repo.WalkTargets(ctx, func(t tuf.Target, body io.Reader) error {
		if comp, ok := composites[t.Path]; ok {
			// Split as it streams; the parts' integrity is the composite's
			// signed hash, checked at its end: until it matched they stay
			// unpublished, and a mismatch fails the walk.
			return sp.split(ctx, comp, body)
		}
		d := store.Digest(t.SHA256)
		if _, ok := want[d]; !ok || done[d] {
			// Not an artifact (or a second target with the same bytes):
			// read it anyway, so its signed hash and length are checked.
			_, err := io.Copy(io.Discard, body)
			return err
		}
		// The store hashes what it stores and refuses it unless it is d,
		// the signed sha256: one hash for both checks.
		tuf.SkipSHA256(body)
		if _, err := c.local.Stage(ctx, d, body, t.Length); err != nil {
			return fmt.Errorf("stage %s (%s): %w", t.Path, d, err)
		}
		done[d] = true
		return nil
	})
	if err != nil {
		if rerr := sr.failed(); rerr != nil {
			return UploadResult{}, staged, rerr
		}
		if errors.Is(err, tuf.ErrInvalid) {
			return UploadResult{}, staged, invalid(err)
		}
		if errors.Is(err, store.ErrHashMismatch) || errors.Is(err, store.ErrSizeMismatch) {
			return UploadResult{}, staged, fmt.Errorf("%w: %w", ErrRepoInvalid, err)
		}
		return UploadResult{}, staged, err
	}
	for d := range want {
		if !done[d] {
			return UploadResult{}, staged, fmt.Errorf("%w: layout: artifact %s has no target content in the archive", ErrRepoInvalid, d)
		}
	}

	if rec.Format != "" {
		rec.Artifacts = append(rec.Artifacts, sp.parts...)
		if rec.Artifacts, err = c.readCabooses(ctx, rec.Artifacts); err != nil {
			return UploadResult{}, staged, err
		}
		comps := make([]RepoArtifact, 0, len(composites))
		for _, a := range composites {
			comps = append(comps, a)
		}
		sort.Slice(comps, func(i, j int) bool { return comps[i].Name < comps[j].Name })
		if err := checkOxideRules(rec, comps); err != nil {
			return UploadResult{}, staged, err
		}
	}

	c.reached(StepStage)

	// Record: repository, generation and saga step in one transaction.
	rec.TimeCreated = time.Now().UTC()
	got, inserted, gen, err := c.cat.InsertRepo(ctx, rec, s.ID, e)
	if err != nil {
		return UploadResult{}, staged, err
	}
	if !inserted {
		// A concurrent upload of the same archive won the race.
		return UploadResult{Repo: got, Status: UploadAlreadyExists}, staged, nil
	}
	s.Step = StepRecorded
	c.reached(StepRecorded)
	c.log.Info("repository recorded", "system_version", got.SystemVersion, "generation", gen)
	c.wantedChanged(ctx)
	return UploadResult{Repo: got, Status: UploadInserted}, staged, nil
}

// fresh is what s staged that the sled did not hold before: what undo may
// delete and what staging hides.
func fresh(s Saga) []store.Digest {
	if len(s.Present) == 0 {
		return s.Staged
	}
	keep := make(map[store.Digest]bool, len(s.Present))
	for _, d := range s.Present {
		keep[d] = true
	}
	var out []store.Digest
	for _, d := range s.Staged {
		if !keep[d] {
			out = append(out, d)
		}
	}
	return out
}

func (c *Coordinator) step(ctx context.Context, s *Saga, fn func(*Saga)) error {
	fn(s)
	if err := c.cat.UpdateSaga(ctx, s.ID, fn); err != nil {
		return fmt.Errorf("saga %s: %w", s.ID, err)
	}
	return nil
}

// invalid wraps a tuf error as ErrRepoInvalid, keeping ErrTooLarge visible.
// An expiry failure says how to accept it, and why it is refused by default.
func invalid(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *tuf.Error
	if errors.As(err, &te) && te.Check == tuf.CheckExpiry {
		return fmt.Errorf("%w: %w (restart depotd with --allow-expired to accept expired metadata; "+
			"Nexus ignores expiry on upload, but Depot follows the TUF client workflow, which refuses expired "+
			"metadata so that a mirror cannot freeze a rack on old, signed content)", ErrRepoInvalid, err)
	}
	return fmt.Errorf("%w: %w", ErrRepoInvalid, err)
}

// repoRecord turns a verified repository into the catalog's record: the
// manifest's artifacts, or, without a manifest, every target as an
// artifact of kind "file" (only when systemVersion is given). For an Oxide
// repository, composites are returned by target path instead of recorded:
// their parts are added as they are split.
func repoRecord(repo *tuf.Repository, hash store.Digest, fileName, systemVersion string) (Repo, map[string]RepoArtifact, error) {
	rec := Repo{Hash: hash, FileName: fileName}
	composites := map[string]RepoArtifact{}
	m, err := repo.Manifest()
	switch {
	case errors.Is(err, tuf.ErrNoManifest):
		if systemVersion == "" {
			return Repo{}, nil, fmt.Errorf("%w: manifest: the repository has no artifacts.json or artifacts-v2.json target; give ?system_version= to upload its targets as files", ErrRepoInvalid)
		}
		rec.SystemVersion = systemVersion
		for _, t := range repo.Targets() {
			rec.Artifacts = append(rec.Artifacts, RepoArtifact{
				Name: t.Path, Version: systemVersion, Kind: "file", Hash: t.SHA256, Size: t.Length,
			})
		}
	case err != nil:
		return Repo{}, nil, invalid(err)
	default:
		if systemVersion != "" && systemVersion != m.SystemVersion {
			return Repo{}, nil, fmt.Errorf("%w: manifest: system_version=%s was given but the manifest says %s", ErrRepoInvalid, systemVersion, m.SystemVersion)
		}
		rec.SystemVersion = m.SystemVersion
		oxide := oxideShaped(m)
		if oxide {
			rec.Format = m.Format
		}
		for _, a := range m.Artifacts {
			ra := RepoArtifact{Name: a.Name, Version: a.Version, Kind: a.Kind, Hash: a.SHA256, Size: a.Length, Tags: a.Tags}
			if oxide && m.Format == tuf.FormatV1 && tuf.IsComposite(a.Kind) {
				if _, dup := composites[a.Target]; dup {
					return Repo{}, nil, fmt.Errorf("%w: manifest: target %s is listed as two composites", ErrRepoInvalid, a.Target)
				}
				composites[a.Target] = ra
				continue
			}
			rec.Artifacts = append(rec.Artifacts, ra)
		}
	}
	if rec.SystemVersion == "" {
		return Repo{}, nil, fmt.Errorf("%w: manifest: empty system_version", ErrRepoInvalid)
	}
	if err := CheckSystemVersion(rec.SystemVersion); err != nil {
		return Repo{}, nil, err
	}
	return rec, composites, nil
}
