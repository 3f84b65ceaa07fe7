package tuf

// White-box tests of the pieces the black-box tests cannot reach directly.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	ok := map[string]string{
		"a":            "a",
		"a/b/":         "a/b",
		"./a//b":       "a/b",
		"repo/targets": "repo/targets",
		".":            ".",
		"./":           ".",
		"a/./b":        "a/b",
		"..a/b..":      "..a/b..",
	}
	for raw, want := range ok {
		if got, err := cleanName(raw); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "/", "/a", "//a", "../a", "a/../../b", "a/../b", "..", `a\b`, "a\x00b", "a/.."} {
		if got, err := cleanName(raw); err == nil {
			t.Errorf("cleanName(%q) = %q, want an error", raw, got)
		}
	}
}

func TestSniff(t *testing.T) {
	tarHeader := make([]byte, 1024)
	copy(tarHeader[257:], "ustar\x0000")
	cases := []struct {
		data []byte
		want format
	}{
		{[]byte("PK\x03\x04rest"), formatZip},
		{[]byte("PK\x05\x06" + strings.Repeat("\x00", 18)), formatZip},
		{[]byte{0x1f, 0x8b, 8, 0}, formatTarGz},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, formatTarZst},
		{tarHeader, formatTar},
		{make([]byte, 1024), formatTar},
	}
	for _, c := range cases {
		if got, err := sniff(bytes.NewReader(c.data), int64(len(c.data))); err != nil || got != c.want {
			t.Errorf("sniff(%q...) = %v, %v; want %v", c.data[:4], got, err, c.want)
		}
	}
	for _, data := range [][]byte{nil, []byte("x"), []byte("PK"), make([]byte, 100)} {
		if got, err := sniff(bytes.NewReader(data), int64(len(data))); err == nil {
			t.Errorf("sniff(%q) = %v, want an error", data, got)
		}
	}
}

func TestVerifyReader_Overlong(t *testing.T) {
	content := []byte("exactly this")
	tg := &resolvedTarget{Target: Target{Path: "x", Length: int64(len(content)), SHA256: sha256.Sum256(content)}, entry: &entry{raw: "targets/x"}}
	got, err := io.ReadAll(newVerifyReader(tg, bytes.NewReader(append(content, " and more"...))))
	var te *Error
	if !errors.As(err, &te) || te.Check != CheckLength {
		t.Fatalf("got %v, want a length error", err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("yielded %q, want no byte past the signed length", got)
	}
	got, err = io.ReadAll(newVerifyReader(tg, bytes.NewReader(content[:5])))
	if !errors.As(err, &te) || te.Check != CheckLength || len(got) != 5 {
		t.Fatalf("short: got %q, %v", got, err)
	}
	if got, err := io.ReadAll(newVerifyReader(tg, bytes.NewReader(content))); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("exact: got %q, %v", got, err)
	}
}

func TestGuard_CountsActualBytes(t *testing.T) {
	// Headers may under-declare; the guard counts what really comes out.
	lim := Limits{MaxExpandedSize: 1000}.withDefaults()
	g := &guard{ctx: context.Background(), r: bytes.NewReader(make([]byte, 2000)), lim: &lim, total: new(int64)}
	_, err := io.Copy(io.Discard, g)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	lim = Limits{MaxCompressionRatio: 10}.withDefaults()
	g = &guard{ctx: context.Background(), r: bytes.NewReader(make([]byte, 2<<20)), lim: &lim, total: new(int64),
		compressed: func() int64 { return 1000 }}
	_, err = io.Copy(io.Discard, g)
	var te *Error
	if !errors.As(err, &te) || te.Check != CheckArchive || !strings.Contains(err.Error(), "ratio") {
		t.Fatalf("got %v, want a ratio error", err)
	}
}

func TestMatchPath(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"*", "a.bin", true},
		{"*", "a/b.bin", false},
		{"a/*", "a/b.bin", true},
		{"a/*", "a/b/c.bin", false},
		{"*/*.img", "x/y.img", true},
		{"zones/a*", "zones/a-deep.bin", true},
		{"zones/a*", "zones/b.bin", false},
		{"exact.bin", "exact.bin", true},
	}
	for _, c := range cases {
		if got := matchPath(c.pattern, c.path); got != c.want {
			t.Errorf("matchPath(%q, %q) = %v", c.pattern, c.path, got)
		}
	}
}

func TestError_Format(t *testing.T) {
	err := &Error{Check: CheckLayout, Entry: "../x", Err: errors.New("path escapes the archive")}
	if got, want := err.Error(), `layout: entry "../x": path escapes the archive`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	err = &Error{Check: CheckExpiry, Role: "timestamp", Err: errors.New("expired at 2020-01-01T00:00:00Z")}
	if got, want := err.Error(), `expiry: role "timestamp": expired at 2020-01-01T00:00:00Z`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooLarge) {
		t.Error("Is")
	}
	if big := tooLargeErr("x", 5); !errors.Is(big, ErrTooLarge) || !errors.Is(big, ErrInvalid) {
		t.Error("tooLargeErr")
	}
}
