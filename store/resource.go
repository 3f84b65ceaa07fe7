package store

import (
	"errors"
	"fmt"
	"syscall"
)

// isResourceErr reports whether err is the process running out of a
// process-wide resource rather than a disk failing: EMFILE, ENFILE,
// ENOMEM. Such an error fails the request (ErrBusy) and leaves every
// mirror healthy.
func isResourceErr(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOMEM)
}

// busyErr wraps a resource error with ErrBusy (and leaves others alone).
func busyErr(err error) error {
	if err == nil || errors.Is(err, ErrBusy) || !isResourceErr(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrBusy, err)
}
