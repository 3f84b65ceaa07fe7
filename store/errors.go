package store

import (
	"errors"

	"depot/store/digest"
)

// Errors returned by the store. Callers check them with errors.Is; the
// returned errors wrap them with the operation and the object.
var (
	// ErrInvalidDigest is returned by ParseDigest for anything that is not
	// 64 hex digits (either case).
	ErrInvalidDigest = digest.ErrInvalid

	// ErrNotFound is returned by Open and Stat when no healthy mirror
	// holds the artifact.
	ErrNotFound = errors.New("artifact not found")

	// ErrHashMismatch is returned by Put when the body does not hash to the
	// digest it was stored under. Nothing is kept.
	ErrHashMismatch = errors.New("sha256 of the body does not match")

	// ErrSizeMismatch is returned by Put when the body is shorter or longer
	// than the size the caller declared (a truncated upload). Nothing is kept.
	ErrSizeMismatch = errors.New("body length does not match the declared size")

	// ErrNoMirrors is returned by Put when no mirror is healthy enough to
	// take a write, and by Open when every mirror is unhealthy.
	ErrNoMirrors = errors.New("no healthy mirror")

	// ErrNoSpace is returned by Put when every mirror that tried ran out of
	// space.
	ErrNoSpace = errors.New("no space left on any mirror")

	// ErrLocked is returned by Open when another process holds a mirror.
	ErrLocked = errors.New("mirror is locked by another process")

	// ErrBusy is returned when the process, not a disk, ran out of a
	// shared resource (file descriptors, memory): EMFILE, ENFILE, ENOMEM.
	// The request fails; no mirror is marked unhealthy for it.
	ErrBusy = errors.New("the daemon is out of file descriptors or memory")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store is closed")
)
