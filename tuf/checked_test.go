package tuf_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// SkipSHA256 hands the sha256 check to the caller: a body with a wrong
// sha256 then reads to a clean EOF; a body already read, or any other
// reader, keeps its own check.
func TestSkipSHA256_OnlyTheSHA256CheckMoves(t *testing.T) {
	b := newRepo(t)
	b.EditFiles(editFile("host.img", func(d []byte) []byte { d[0] ^= 1; return d }))
	repo := mustOpen(t, b, tuftest.Zip, tuf.Options{})
	err := repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
		if !tuf.SkipSHA256(body) {
			t.Fatal("SkipSHA256 refused a fresh body")
		}
		_, err := io.ReadAll(body)
		return err
	})
	if err != nil {
		t.Fatalf("walk with the caller checking sha256: %v", err)
	}

	err = repo.WalkTargets(context.Background(), func(tg tuf.Target, body io.Reader) error {
		if _, err := body.Read(make([]byte, 1)); err != nil {
			return err
		}
		if tuf.SkipSHA256(body) {
			t.Fatal("SkipSHA256 took a body that was already read")
		}
		return nil
	})
	wantCheck(t, err, tuf.CheckHash, "targets")

	if tuf.SkipSHA256(strings.NewReader("x")) {
		t.Fatal("SkipSHA256 took a reader that is not a target body")
	}

}
