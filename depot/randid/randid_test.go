package randid_test

import (
	"regexp"
	"testing"

	"depot/depot/randid"
)

func TestNew_Format_AndDistinct(t *testing.T) {
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := make(map[string]bool)
	for range 100 {
		id := randid.New()
		if !hex32.MatchString(id) {
			t.Fatalf("id %q is not 32 lowercase hex digits", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}
