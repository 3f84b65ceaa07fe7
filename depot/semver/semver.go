// Package semver parses and orders semantic versions (semver.org 2.0.0),
// the form omicron requires of a repository's system_version: tufaceous
// parses it, and omicron's TufRepo schema carries the same pattern.
package semver

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Version is a parsed semantic version.
type Version struct {
	Major, Minor, Patch uint64
	Pre                 []string // dot-separated pre-release identifiers
	Build               string   // build metadata, ignored by Compare
}

// ErrInvalid is what every Parse error wraps.
var ErrInvalid = errors.New("not a semantic version")

// Parse parses MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] with semver's rules:
// no leading zeros in numbers or numeric pre-release identifiers,
// identifiers of [0-9A-Za-z-], none empty.
func Parse(s string) (Version, error) {
	var v Version
	bad := func(why string) (Version, error) {
		return Version{}, fmt.Errorf("%w: %s (want MAJOR.MINOR.PATCH such as 1.2.3 or 1.2.3-rc.1)", ErrInvalid, why)
	}
	rest := s
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		v.Build, rest = rest[i+1:], rest[:i]
		for _, id := range strings.Split(v.Build, ".") {
			if id == "" || !ident(id) {
				return bad("bad build metadata")
			}
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		pre := rest[i+1:]
		rest = rest[:i]
		v.Pre = strings.Split(pre, ".")
		for _, id := range v.Pre {
			if id == "" || !ident(id) {
				return bad("bad pre-release identifier")
			}
			if numeric(id) && len(id) > 1 && id[0] == '0' {
				return bad("numeric pre-release identifier with a leading zero")
			}
		}
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return bad("not three dot-separated numbers")
	}
	nums := [3]*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if p == "" || !numeric(p) || (len(p) > 1 && p[0] == '0') {
			return bad("a number is empty, not decimal, or has a leading zero")
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return bad("a number is too large")
		}
		*nums[i] = n
	}
	return v, nil
}

func numeric(s string) bool { return strings.Trim(s, "0123456789") == "" }

func ident(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// Compare orders a and b by semver precedence: -1, 0 or +1. Build
// metadata does not count.
func Compare(a, b Version) int {
	for _, d := range [3][2]uint64{{a.Major, b.Major}, {a.Minor, b.Minor}, {a.Patch, b.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a.Pre) == 0 && len(b.Pre) == 0:
		return 0
	case len(a.Pre) == 0:
		return 1 // a release ranks above its pre-releases
	case len(b.Pre) == 0:
		return -1
	}
	for i := 0; i < len(a.Pre) && i < len(b.Pre); i++ {
		if c := compareIdent(a.Pre[i], b.Pre[i]); c != 0 {
			return c
		}
	}
	return cmpInt(len(a.Pre), len(b.Pre))
}

func compareIdent(x, y string) int {
	xn, yn := numeric(x), numeric(y)
	switch {
	case xn && yn:
		if c := cmpInt(len(x), len(y)); c != 0 { // no leading zeros: longer is larger
			return c
		}
		return strings.Compare(x, y)
	case xn:
		return -1 // numeric identifiers rank below alphanumeric ones
	case yn:
		return 1
	}
	return strings.Compare(x, y)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CompareStrings orders two version strings: by precedence when both
// parse, with ties (equal precedence, different build metadata) broken by
// the strings; a string that does not parse ranks after every one that
// does, and among themselves such strings sort as text. A total order, so
// that pages of a listing never overlap.
func CompareStrings(a, b string) int {
	va, ea := Parse(a)
	vb, eb := Parse(b)
	switch {
	case ea == nil && eb == nil:
		if c := Compare(va, vb); c != 0 {
			return c
		}
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	return strings.Compare(a, b)
}
