package tuf

import (
	"encoding/json"
	"fmt"
	"strings"
)

// supportedSpecMajor is the TUF specification major version Depot reads.
// go-tuf does not check spec_version; python-tuf, which tufaceous and
// omicron's tooling follow, refuses metadata whose major differs, so a
// repository Depot accepts is one they accept too.
const supportedSpecMajor = "1"

// checkSpecVersion refuses role's metadata unless its signed.spec_version
// reads MAJOR.MINOR or MAJOR.MINOR.PATCH (digits only) with MAJOR 1, as
// python-tuf does. entry names the archive entry, if any. Malformed JSON
// passes here: go-tuf reports it with its own check.
func checkSpecVersion(data []byte, role, entry string) error {
	var md struct {
		Signed struct {
			SpecVersion *string `json:"spec_version"`
		} `json:"signed"`
	}
	if json.Unmarshal(data, &md) != nil {
		return nil
	}
	bad := func(format string, args ...any) error {
		return &Error{Check: CheckSpecVersion, Role: role, Entry: entry, Err: fmt.Errorf(format, args...)}
	}
	if md.Signed.SpecVersion == nil {
		return bad("no spec_version")
	}
	v := *md.Signed.SpecVersion
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("spec_version %q is not MAJOR.MINOR[.PATCH]", clip(v))
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return bad("spec_version %q is not MAJOR.MINOR[.PATCH]", clip(v))
		}
	}
	if parts[0] != supportedSpecMajor {
		return bad("spec_version %q: only major version %s of the TUF specification is supported", clip(v), supportedSpecMajor)
	}
	return nil
}

// clip shortens what a document says before it goes into a message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
