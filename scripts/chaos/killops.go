package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"depot/server/api"
	"depot/server/client"
	"depot/tuf/tuftest"
)

// slowReader hands out b in chunks with a pause between them, so a kill
// lands while the body is still arriving.
type slowReader struct {
	b     []byte
	chunk int
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := min(len(p), s.chunk, len(s.b))
	copy(p, s.b[:n])
	s.b = s.b[n:]
	return n, nil
}

// filesTotal is the number of artifact files on both mirrors.
func filesTotal(d *daemon) int { return len(filesOn(d.mirror(0))) + len(filesOn(d.mirror(1))) }

// checkBytes: every artifact file on every mirror hashes to its name.
func checkBytes(d *daemon) (corrupt int) {
	for i := range 2 {
		for n := range filesOn(d.mirror(i)) {
			if got, err := hashFile(artifactPath(d.mirror(i), n)); err != nil || got != n {
				corrupt++
			}
		}
	}
	return corrupt
}

// killUploads: SIGKILL a coordinator during a repository upload. After the
// restart there are no temp files and list = files; an acknowledged upload
// is recorded with every artifact on both mirrors, byte-correct; one that
// is not recorded left no artifact behind.
func killUploads(c config) (string, error) {
	size := 8 << 20
	if c.short {
		size = 2 << 20
	}
	r := rand.New(rand.NewPCG(c.seed, 2))
	b := tuftest.NewBuilder(nil)
	var arts []tuftest.Artifact
	var digests []string
	for i := range 3 {
		data, dg := body(r, size+i)
		name := fmt.Sprintf("artifact-%d.bin", i)
		b.AddTarget(name, data)
		arts = append(arts, tuftest.Artifact{Name: fmt.Sprintf("a%d", i), Version: "1.0.0", Kind: "blob", Target: name})
		digests = append(digests, dg)
	}
	b.SetManifest("1.0.0", arts)
	zip := b.Archive(tuftest.Zip)
	root := filepath.Join(c.work, "upload-root.json")
	if err := os.WriteFile(root, b.RootJSON(), 0o644); err != nil {
		return "", err
	}
	d := newCoordinator(c, "upload", "--trusted-root", root)
	ctx := context.Background()
	// One upload without a kill measures how long it takes here, so the
	// kills land anywhere from the first bytes to just after the reply.
	took, err := timedUpload(ctx, d, zip)
	if err != nil {
		return "", fmt.Errorf("upload without a kill: %w", err)
	}
	window := took + took/5
	var acked, recorded, undone, corrupt int
	for round := range c.opRounds {
		if err := d.start(); err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
		op := client.New(d.opURL(), nil)
		done := make(chan error, 1)
		go func() {
			_, err := op.UploadRepo(ctx, "repo.zip", "", &slowReader{b: zip, chunk: 1 << 20, pause: 5 * time.Millisecond}, int64(len(zip)))
			done <- err
		}()
		time.Sleep(time.Duration(r.Int64N(int64(window))))
		d.kill()
		uerr := <-done
		ok := uerr == nil
		if ok {
			acked++
		}
		var apiErr *client.APIError
		if errors.As(uerr, &apiErr) {
			// The daemon answered: a refusal, not a kill.
			d.kill()
			return "", fmt.Errorf("round %d: upload refused: %w", round, uerr)
		}
		if err := d.start(); err != nil {
			return "", fmt.Errorf("round %d restart: %w", round, err)
		}
		err := func() error {
			if err := checkConsistent(d); err != nil {
				return err
			}
			corrupt += checkBytes(d)
			repos, err := op.Repos(ctx)
			if err != nil {
				return err
			}
			if len(repos) == 0 {
				if ok {
					return errors.New("the upload was acknowledged, the repository is gone")
				}
				undone++
				if !waitUntil(10*time.Second, func() bool { return filesTotal(d) == 0 }) {
					return fmt.Errorf("no repository, but %d artifact files on the mirrors", filesTotal(d))
				}
				return nil
			}
			recorded++
			l, err := list(d)
			if err != nil {
				return err
			}
			for _, dg := range digests {
				if l[dg] != 2 {
					return fmt.Errorf("repository recorded, artifact %s has %d copies", dg, l[dg])
				}
			}
			if err := op.DeleteRepo(ctx, "1.0.0"); err != nil {
				return err
			}
			if !waitUntil(10*time.Second, func() bool { return filesTotal(d) == 0 }) {
				return fmt.Errorf("repository deleted, %d artifact files remain", filesTotal(d))
			}
			return checkConsistent(d)
		}()
		d.stop()
		if err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
	}
	detail := fmt.Sprintf("%d rounds (an upload takes %s, kills within %s), %d acknowledged, %d recorded, %d undone, 0 half-recorded, %d corrupt files",
		c.opRounds, took.Round(time.Millisecond), window.Round(time.Millisecond), acked, recorded, undone, corrupt)
	if corrupt > 0 {
		return detail, errors.New("corrupt artifact files")
	}
	return detail, nil
}

// timedUpload uploads zip once, deletes it again and stops the daemon;
// it returns how long the upload took.
func timedUpload(ctx context.Context, d *daemon, zip []byte) (time.Duration, error) {
	if err := d.start(); err != nil {
		return 0, err
	}
	defer d.stop()
	op := client.New(d.opURL(), nil)
	start := time.Now()
	if _, err := op.UploadRepo(ctx, "repo.zip", "", &slowReader{b: zip, chunk: 1 << 20, pause: 5 * time.Millisecond}, int64(len(zip))); err != nil {
		return 0, err
	}
	took := time.Since(start)
	if err := op.DeleteRepo(ctx, "1.0.0"); err != nil {
		return 0, err
	}
	if !waitUntil(10*time.Second, func() bool { return filesTotal(d) == 0 }) {
		return 0, fmt.Errorf("repository deleted, %d artifact files remain", filesTotal(d))
	}
	return took, nil
}

// killCopies: SIGKILL a sled while it copies artifacts from another daemon.
// After the restart there are no temp files, list = files, and every file
// is byte-correct; a last round copies everything to completion.
func killCopies(c config) (string, error) {
	size := 16 << 20
	if c.short {
		size = 8 << 20
	}
	r := rand.New(rand.NewPCG(c.seed, 3))
	src := newDaemon(c, "copy-src")
	if err := src.start(); err != nil {
		return "", err
	}
	defer src.stop()
	ctx := context.Background()
	srcSled := client.New(src.url(""), nil)
	var digests []api.Digest
	for i := range 4 {
		data, hexd := body(r, size+i)
		dg, _ := api.ParseDigest(hexd)
		if _, err := srcSled.PutArtifact(ctx, dg, bytes.NewReader(data), int64(len(data))); err != nil {
			return "", err
		}
		digests = append(digests, dg)
	}
	d := newDaemon(c, "copy-dst")
	var held, corrupt int
	for round := range c.opRounds + 1 {
		last := round == c.opRounds
		if err := d.start(); err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
		sled := client.New(d.url(""), nil)
		for _, dg := range digests {
			if err := sled.CopyFromDepot(ctx, dg, nil, src.depotURL()); err != nil {
				d.kill()
				return "", fmt.Errorf("round %d: copy-from-depot: %w", round, err)
			}
		}
		var err error
		if last {
			for _, dg := range digests {
				if job, jerr := sled.Copy(ctx, dg, 60*time.Second); jerr != nil || job.State != api.CopySucceeded {
					err = fmt.Errorf("last copy of %s: %+v, %v", dg, job, jerr)
					break
				}
			}
			if err == nil {
				if l, lerr := list(d); lerr != nil || len(l) != len(digests) {
					err = fmt.Errorf("after the last copies the sled lists %d artifacts (%v), want %d", len(l), lerr, len(digests))
				}
			}
		} else {
			time.Sleep(time.Duration(r.IntN(60)) * time.Millisecond)
			d.kill()
			if err = d.start(); err != nil {
				return "", fmt.Errorf("round %d restart: %w", round, err)
			}
		}
		if err == nil {
			err = checkConsistent(d)
		}
		corrupt += checkBytes(d)
		if err == nil && !last {
			held += len(filesOn(d.mirror(0)))
			for _, dg := range digests {
				if derr := sled.DeleteArtifact(ctx, dg); derr != nil {
					err = derr
					break
				}
			}
		}
		d.stop()
		if err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
	}
	detail := fmt.Sprintf("%d rounds x %d copies, %d whole copies found after kills, %d corrupt files, final copy complete",
		c.opRounds, len(digests), held, corrupt)
	if corrupt > 0 {
		return detail, errors.New("corrupt artifact files")
	}
	return detail, nil
}

// killConfigs: SIGKILL a sled while a new config arrives. After the
// restart the sled is at a generation it was given (the acknowledged one
// or a later one), with exactly the set sent for it, no temp files,
// list = files, and once reconciled nothing it does not want.
func killConfigs(c config) (string, error) {
	r := rand.New(rand.NewPCG(c.seed, 4))
	d := newDaemon(c, "config")
	ctx := context.Background()
	blobs := map[api.Digest][]byte{}
	var all []api.Digest
	for i := range 6 {
		data, hexd := body(r, 64<<10+i)
		dg, _ := api.ParseDigest(hexd)
		blobs[dg] = data
		all = append(all, dg)
	}
	sets := map[uint64][]api.Digest{}
	var acked, gen uint64
	var ackedN, corrupt int
	for round := range c.opRounds {
		if err := d.start(); err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
		sled := client.New(d.url(""), nil)
		// Bring the current config's set back (the reconciler may have
		// removed some under an earlier, smaller config).
		var g *uint64
		if acked > 0 {
			g = &acked
		}
		for _, dg := range want(sets, acked, all) {
			if _, err := sled.PutArtifactAt(ctx, dg, g, bytes.NewReader(blobs[dg]), int64(len(blobs[dg]))); err != nil {
				d.kill()
				return "", fmt.Errorf("round %d: put %s: %w", round, dg, err)
			}
		}
		gen++
		set := append([]api.Digest(nil), all...)
		r.Shuffle(len(set), func(i, j int) { set[i], set[j] = set[j], set[i] })
		set = set[:1+r.IntN(len(set))]
		sets[gen] = set
		done := make(chan error, 1)
		go func() { done <- sled.PutConfig(ctx, api.Config{Generation: gen, Artifacts: set}) }()
		time.Sleep(time.Duration(r.IntN(5000)) * time.Microsecond)
		d.kill()
		if <-done == nil {
			acked = gen
			ackedN++
		}
		if err := d.start(); err != nil {
			return "", fmt.Errorf("round %d restart: %w", round, err)
		}
		err := func() error {
			cfg, err := sled.GetConfig(ctx)
			switch {
			case errors.Is(err, api.ErrNoConfig):
				if acked > 0 {
					return fmt.Errorf("generation %d was acknowledged, no config after restart", acked)
				}
				return checkConsistent(d)
			case err != nil:
				return err
			}
			if cfg.Generation < acked || cfg.Generation > gen {
				return fmt.Errorf("generation %d after restart; acknowledged %d, last sent %d", cfg.Generation, acked, gen)
			}
			if !sameSet(cfg.Artifacts, sets[cfg.Generation]) {
				return fmt.Errorf("generation %d holds a set it was not given", cfg.Generation)
			}
			acked = cfg.Generation
			wanted := map[string]bool{}
			for _, dg := range cfg.Artifacts {
				wanted[dg.String()] = true
			}
			stray := func() int {
				n := 0
				for i := range 2 {
					for f := range filesOn(d.mirror(i)) {
						if !wanted[f] {
							n++
						}
					}
				}
				return n
			}
			if !waitUntil(10*time.Second, func() bool { return stray() == 0 }) {
				return fmt.Errorf("%d files generation %d does not want remain after reconcile", stray(), cfg.Generation)
			}
			return checkConsistent(d)
		}()
		corrupt += checkBytes(d)
		d.stop()
		if err != nil {
			return "", fmt.Errorf("round %d: %w", round, err)
		}
	}
	detail := fmt.Sprintf("%d rounds, %d configs acknowledged, last generation %d, 0 mixed, %d corrupt files",
		c.opRounds, ackedN, acked, corrupt)
	if corrupt > 0 {
		return detail, errors.New("corrupt artifact files")
	}
	return detail, nil
}

// want is generation g's set, or every artifact before the first config.
func want(sets map[uint64][]api.Digest, g uint64, all []api.Digest) []api.Digest {
	if g == 0 {
		return all
	}
	return sets[g]
}

func sameSet(a, b []api.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[api.Digest]bool{}
	for _, d := range a {
		m[d] = true
	}
	for _, d := range b {
		if !m[d] {
			return false
		}
	}
	return true
}
