package semver

import (
	"errors"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, good := range []string{"0.0.0", "1.0.0", "1.2.3", "10.20.30", "1.0.0-rc.1", "1.0.0-alpha-a.b-c", "1.0.0+build.5", "1.0.0-0.3.7+exp.sha.5114f85", "17.0.0-0.ci+git2a3b"} {
		if _, err := Parse(good); err != nil {
			t.Errorf("Parse(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.00.0", "1.0.0-", "1.0.0-01", "1.0.0-a..b", "1.0.0+", "1.0.0+a_b", "1.0.0 ", " 1.0.0", "1.0.x", "99999999999999999999.0.0", "not-a-version"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestCompare: semver.org's example order, plus build metadata and
// strings that do not parse.
func TestCompare(t *testing.T) {
	want := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
		"1.0.0-rc.1", "1.0.0", "1.0.0+b1", "1.0.0+b2", "1.9.0", "1.10.0", "2.0.0", "10.0.0", "abc", "zzz"}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, CompareStrings)
	if !slices.Equal(got, want) {
		t.Fatalf("sorted:\n%v\nwant:\n%v", got, want)
	}
}
