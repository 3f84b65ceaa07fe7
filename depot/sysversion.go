package depot

import (
	"fmt"
	"strconv"

	"depot/depot/semver"
)

// CheckSystemVersion returns ErrRepoInvalid, naming the field, unless v is
// a semantic version: tufaceous parses system_version as one, and a
// repository whose version is not would make every listing undecodable
// for omicron's clients.
func CheckSystemVersion(v string) error {
	if _, err := semver.Parse(v); err != nil {
		shown := v
		if len(shown) > 64 {
			shown = shown[:61] + "..."
		}
		return fmt.Errorf("%w: manifest: system_version %s: %v", ErrRepoInvalid, strconv.Quote(shown), err)
	}
	return nil
}
