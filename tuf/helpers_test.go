package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// open opens archive bytes against roots.
func open(t testing.TB, data []byte, roots [][]byte, opts tuf.Options) (*tuf.Repository, error) {
	t.Helper()
	return tuf.Open(context.Background(), bytes.NewReader(data), int64(len(data)), roots, opts)
}

// mustOpen opens b's repository in format f and fails t on error.
func mustOpen(t testing.TB, b *tuftest.Builder, f tuftest.Format, opts tuf.Options) *tuf.Repository {
	t.Helper()
	repo, err := open(t, b.Archive(f), [][]byte{b.RootJSON()}, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", f, err)
	}
	return repo
}

// wantCheck fails t unless err is an invalid-repository error whose *Error
// has the given check (and role, if role is not "").
func wantCheck(t testing.TB, err error, check, role string) *tuf.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want check %q", check)
	}
	if !errors.Is(err, tuf.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var te *tuf.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *tuf.Error", err, err)
	}
	if te.Check != check || (role != "" && te.Role != role) {
		t.Fatalf("got check %q role %q (%v), want check %q role %q", te.Check, te.Role, err, check, role)
	}
	return te
}

// wantOpenFails opens data, expects a failure with check, and that the
// message mentions each of mention.
func wantOpenFails(t testing.TB, data []byte, roots [][]byte, opts tuf.Options, check, role string, mention ...string) *tuf.Error {
	t.Helper()
	repo, err := open(t, data, roots, opts)
	if err == nil {
		t.Fatalf("Open succeeded with targets %v, want check %q", repo.Targets(), check)
	}
	te := wantCheck(t, err, check, role)
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	return te
}

// readAll walks every target and returns its content by path.
func readAll(t testing.TB, repo *tuf.Repository) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
		data, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if _, dup := got[tg.Path]; dup {
			t.Errorf("target %q walked twice", tg.Path)
		}
		got[tg.Path] = data
		return nil
	})
	if err != nil {
		t.Fatalf("WalkTargets: %v", err)
	}
	return got
}

// walkErr walks every target, reading each fully, and returns the error.
func walkErr(repo *tuf.Repository) error {
	return repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		return err
	})
}

// editFile returns a file edit applying fn to the content of every file
// whose name ends with suffix.
func editFile(suffix string, fn func([]byte) []byte) func([]tuftest.Entry) []tuftest.Entry {
	return func(files []tuftest.Entry) []tuftest.Entry {
		for i := range files {
			if strings.HasSuffix(files[i].Name, suffix) {
				files[i].Data = fn(bytes.Clone(files[i].Data))
			}
		}
		return files
	}
}

// newRepo returns a builder with a manifest and two targets.
func newRepo(t testing.TB, opts ...tuftest.Option) *tuftest.Builder {
	t.Helper()
	b := tuftest.NewBuilder(t, opts...)
	b.SetManifest("1.0.0", []tuftest.Artifact{
		{Name: "zone", Version: "1.0.0", Kind: "zone", Target: "zone.bin"},
		{Name: "host", Version: "1.0.0", Kind: "host", Target: "images/host.img"},
	})
	b.AddTarget("zone.bin", []byte("zone image"))
	b.AddTarget("images/host.img", bytes.Repeat([]byte("host"), 1000))
	return b
}
