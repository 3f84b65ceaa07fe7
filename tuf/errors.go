package tuf

import (
	"errors"
	"fmt"
	"strings"
)

// Checks name what an *Error found wrong. They are stable strings: callers
// show them to operators (REPOSITORY_INVALID names the check) and tests match
// on them.
const (
	// CheckArchive: the container is bad: empty, not a zip/tar/tar.gz/tar.zst,
	// truncated or corrupt, too many entries, too large (also ErrTooLarge),
	// compression ratio over the limit, links, devices, fifos, sparse or
	// encrypted entries, overlapping zip entries.
	CheckArchive = "archive"
	// CheckLayout: the names inside the container are bad: absolute paths,
	// "..", duplicates, no metadata/ directory, a metadata file missing,
	// malformed or over its cap, a target missing from the archive.
	CheckLayout = "layout"
	// CheckSignature: metadata is not signed by a key its delegator trusts,
	// or a delegated role lists a target outside its delegated paths.
	CheckSignature = "signature"
	// CheckThreshold: metadata carries some valid signatures, but fewer than
	// its role's threshold.
	CheckThreshold = "threshold"
	// CheckExpiry: metadata expired before Options.Now (see AllowExpired).
	CheckExpiry = "expiry"
	// CheckHash: content (metadata or target) does not match its signed hash,
	// or a target carries no usable sha256.
	CheckHash = "hash"
	// CheckLength: content does not match its signed length.
	CheckLength = "length"
	// CheckManifest: artifacts.json is malformed or names missing targets.
	CheckManifest = "manifest"
	// CheckRoot: a trusted root is unusable (not a root, not self-signed),
	// or none was given.
	CheckRoot = "root"
	// CheckSpecVersion: metadata (or a trusted root) declares a
	// spec_version whose major is not 1, or none that parses.
	CheckSpecVersion = "spec_version"
	// CheckVersion: a metadata version is not the one its delegator signed
	// (rollback), or a root in the chain skips a version.
	CheckVersion = "version"
	// CheckComposite: a v1 composite artifact (host, trampoline, RoT,
	// control plane tarball) is malformed, hostile or over a cap, or a
	// zone inside it is.
	CheckComposite = "composite"
	// CheckHubris: a Hubris build archive has no readable caboose.
	CheckHubris = "hubris"
	// CheckKind: an Oxide repository breaks a rule about its artifact
	// kinds or versions (one host per repository, version syntax, ...).
	CheckKind = "kind"
)

// Error says which check failed on a repository archive, for which role and
// which archive entry. Every error Open, Manifest and WalkTargets return for a
// bad repository is, or wraps, an *Error; errors.Is(err, ErrInvalid) holds for
// all of them.
type Error struct {
	Check string // one of the Check* constants
	Role  string // TUF role involved, if any ("root", "timestamp", a delegated role)
	Entry string // archive entry involved, if any, as named in the archive
	Err   error  // what went wrong
}

// Error reads like `expiry: role "timestamp": expired at 2020-01-01T00:00:00Z`
// or `layout: entry "../x": path escapes the archive`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Check)
	b.WriteString(": ")
	if e.Role != "" {
		fmt.Fprintf(&b, "role %q: ", e.Role)
	}
	if e.Entry != "" {
		fmt.Fprintf(&b, "entry %q: ", e.Entry)
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("check failed")
	}
	return b.String()
}

// Unwrap returns the underlying cause (ErrTooLarge for size-limit failures).
func (e *Error) Unwrap() error { return e.Err }

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Sentinels, checked with errors.Is.
var (
	// ErrInvalid matches every *Error: the archive or the repository in it
	// is not acceptable. Returned (wrapped) by Open, Manifest, WalkTargets.
	ErrInvalid = errors.New("tuf: invalid repository")

	// ErrTooLarge is wrapped by the *Error (Check "archive") returned when
	// the archive's entries expand beyond Limits.MaxExpandedSize, declared or
	// actual. errors.Is(err, ErrInvalid) also holds, so test ErrTooLarge
	// first when the two are told apart (HTTP 413 versus 400).
	ErrTooLarge = errors.New("tuf: archive expands beyond the size limit")

	// ErrNoManifest is returned by Repository.Manifest when the repository
	// has neither an "artifacts.json" nor an "artifacts-v2.json" target. It
	// is not an *Error: a repository without a manifest is valid TUF, the
	// caller decides.
	ErrNoManifest = errors.New("tuf: repository has no artifacts.json or artifacts-v2.json target")
)

func archiveErr(entry string, format string, args ...any) *Error {
	return &Error{Check: CheckArchive, Entry: entry, Err: fmt.Errorf(format, args...)}
}

func layoutErr(entry string, format string, args ...any) *Error {
	return &Error{Check: CheckLayout, Entry: entry, Err: fmt.Errorf(format, args...)}
}

func tooLargeErr(entry string, limit int64) *Error {
	return &Error{Check: CheckArchive, Entry: entry,
		Err: fmt.Errorf("%w: more than %d bytes expanded", ErrTooLarge, limit)}
}

func manifestErr(format string, args ...any) *Error {
	return &Error{Check: CheckManifest, Err: fmt.Errorf(format, args...)}
}
