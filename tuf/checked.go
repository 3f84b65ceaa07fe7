package tuf

import "io"

// SkipSHA256 tells a target body from WalkTargets that the caller checks
// its sha256 against Target.SHA256 itself, from the same bytes (as the
// store does when it stores them under that digest), so the body does not
// hash them a second time. The body still checks the signed length, and
// sha512 when one is signed; the caller's check replaces only the sha256
// one, and a body the caller does not read to its end is not checked for
// it. It must be called before the first Read; it reports whether the body
// took it (false for any other reader, which then checks what it checks).
func SkipSHA256(body io.Reader) bool {
	v, ok := body.(*verifyReader)
	if !ok || v.n > 0 || v.err != nil {
		return false
	}
	v.h256 = nil
	return true
}
