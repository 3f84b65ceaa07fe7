package tuf

import (
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// CheckRootDocument reports whether doc is a TUF root.json document that signs
// itself (its own root role's threshold of signatures verify), so that it
// can be offered as a trusted root, and declares spec_version 1.x. It
// returns the root's version.
func CheckRootDocument(doc []byte) (version int64, err error) {
	// go-tuf dereferences what hostile documents leave nil (a null key):
	// such a document is simply not a usable root.
	defer func() {
		if p := recover(); p != nil {
			version, err = 0, &Error{Check: CheckRoot, Err: fmt.Errorf("malformed root document: %v", p)}
		}
	}()
	if int64(len(doc)) > rootMaxSize {
		return 0, &Error{Check: CheckRoot, Err: fmt.Errorf("root document is %d bytes, over the %d-byte cap", len(doc), rootMaxSize)}
	}
	if err := checkSpecVersion(doc, metadata.ROOT, ""); err != nil {
		return 0, err
	}
	root, err := metadata.Root().FromBytes(doc)
	if err != nil {
		return 0, &Error{Check: CheckRoot, Err: fmt.Errorf("not a TUF root document: %w", err)}
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return 0, &Error{Check: CheckRoot, Role: metadata.ROOT, Err: fmt.Errorf("root does not sign itself: %w", err)}
	}
	return root.Signed.Version, nil
}
