package store_test

import (
	"errors"
	"strings"
	"testing"

	"depot/store"
)

func TestParseDigest(t *testing.T) {
	good := strings.Repeat("ab", 32)
	if d, err := store.ParseDigest(good); err != nil || d.String() != good {
		t.Fatalf("ParseDigest(%q) = %v, %v", good, d, err)
	}
	// omicron's ArtifactHash accepts upper case: parse it, print lower.
	if d, err := store.ParseDigest(strings.ToUpper(good)); err != nil || d.String() != good {
		t.Fatalf("ParseDigest(upper) = %v, %v, want %s", d, err, good)
	}
	for _, bad := range []string{"", "abc", good + "0", strings.Repeat("g", 64), "../" + good[3:]} {
		if _, err := store.ParseDigest(bad); !errors.Is(err, store.ErrInvalidDigest) {
			t.Errorf("ParseDigest(%q) err = %v, want ErrInvalidDigest", bad, err)
		}
	}
}
