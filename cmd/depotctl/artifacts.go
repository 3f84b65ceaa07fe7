package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"depot/server/api"
)

// errMismatch is returned when downloaded bytes do not hash to the digest
// asked for.
var errMismatch = errors.New("sha256 mismatch")

func (a *app) artifactsCmd() *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the daemon's artifacts with the number of mirrors holding each",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			gen, list, err := a.client().ListArtifacts(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(api.ListResponse{Generation: gen, List: list}, func(w io.Writer) {
				if gen == nil {
					kv(w, "generation", "none (unmanaged)")
				} else {
					kv(w, "generation", *gen)
				}
				section(w, false, "SHA256\tCOPIES")
				keys := make([]api.Digest, 0, len(list))
				for d := range list {
					keys = append(keys, d)
				}
				slices.SortFunc(keys, func(x, y api.Digest) int { return bytes.Compare(x[:], y[:]) })
				for _, d := range keys {
					row(w, d, list[d])
				}
			})
		}),
	}

	var generation uint64
	put := &cobra.Command{
		Use:   "put FILE",
		Short: "Store FILE as an artifact (its SHA-256 is computed first)",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			var gen *uint64
			if cmd.Flags().Changed("generation") {
				gen = &generation
			}
			d, res, err := a.putFile(cmd.Context(), args[0], gen)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, res)
			}
			fmt.Fprintf(a.stdout, "%s: stored on %d of %d mirrors\n", d, res.SuccessfulWrites, res.Datasets)
			return nil
		}),
	}
	put.Flags().Uint64Var(&generation, "generation", 0, "the daemon's config generation (required once it is managed)")

	var out string
	get := &cobra.Command{
		Use:   "get SHA256 [-o FILE]",
		Short: "Download an artifact, verifying its SHA-256",
		Long: `Get downloads an artifact from the daemon's repo-depot API and checks
its SHA-256 while writing. It writes to a temp file beside FILE (default:
the hash, in the current directory) and renames it only when the bytes
verify. With -o - it writes to stdout, and exits 1 after the last byte if
they did not verify.`,
		Args: exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			d, err := parseDigest(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = d.String()
			}
			return a.get(cmd.Context(), d, out)
		}),
	}
	get.Flags().StringVarP(&out, "output", "o", "", "where to write (- for stdout; default: ./SHA256)")

	rm := &cobra.Command{
		Use:   "rm SHA256",
		Short: "Delete an artifact (refused while the daemon's config wants it)",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			d, err := parseDigest(args[0])
			if err != nil {
				return err
			}
			if err := a.client().DeleteArtifact(cmd.Context(), d); err != nil {
				return err
			}
			a.say("deleted %s", d)
			return nil
		}),
	}
	return group("artifacts", "Read, write and delete a daemon's artifacts", ls, put, get, rm)
}

// parseDigest parses a SHA-256 argument; a malformed one is a usage error.
func parseDigest(s string) (api.Digest, error) {
	d, err := api.ParseDigest(s)
	if err != nil {
		return d, &usageError{err}
	}
	return d, nil
}

// putFile hashes the file at path (streamed), then streams it to the
// daemon under that hash.
func (a *app) putFile(ctx context.Context, path string, gen *uint64) (api.Digest, api.PutResult, error) {
	var d api.Digest
	f, err := os.Open(path)
	if err != nil {
		return d, api.PutResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return d, api.PutResult{}, err
	}
	if !fi.Mode().IsRegular() {
		return d, api.PutResult{}, fmt.Errorf("%s is not a regular file", path)
	}
	name := filepath.Base(path)

	h := sha256.New()
	p := a.newProgress("hash "+name, fi.Size())
	_, err = io.Copy(h, p.Reader(f))
	p.Done(err)
	if err != nil {
		return d, api.PutResult{}, fmt.Errorf("read %s: %w", path, err)
	}
	h.Sum(d[:0])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return d, api.PutResult{}, err
	}

	p = a.newProgress("put "+name, fi.Size())
	res, err := a.client().PutArtifactAt(ctx, d, gen, p.Reader(f), fi.Size())
	p.Done(err)
	return d, res, err
}

// get downloads d to out ("-": stdout), verifying it on the way.
func (a *app) get(ctx context.Context, d api.Digest, out string) error {
	dc, err := a.depotClient(ctx)
	if err != nil {
		return err
	}
	body, size, err := dc.GetArtifact(ctx, d)
	if err != nil {
		return err
	}
	defer body.Close()
	p := a.newProgress("get "+short(d.String()), size)

	if out == "-" {
		_, err := verifyCopy(a.stdout, p.Reader(body), d, size)
		p.Done(err)
		return err
	}

	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		p.Done(err)
		return err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := verifyCopy(tmp, p.Reader(body), d, size)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	p.Done(err)
	if err != nil {
		return err
	}
	committed = true
	fmt.Fprintf(a.stderr, "wrote %s: %s, sha256 verified\n", out, formatBytes(n))
	return nil
}

// verifyCopy copies body to w while hashing it, and fails if the length
// differs from size (>= 0) or the bytes do not hash to d.
func verifyCopy(w io.Writer, body io.Reader, d api.Digest, size int64) (int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), body)
	if err != nil {
		return n, fmt.Errorf("download %s: %w", d, err)
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("download %s: got %d bytes, the daemon announced %d", d, n, size)
	}
	var got api.Digest
	h.Sum(got[:0])
	if got != d {
		return n, fmt.Errorf("download %s: %w: the %d bytes received hash to %s", d, errMismatch, n, got)
	}
	return n, nil
}
