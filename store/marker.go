package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A mirror carries a marker file, written when the mirror is first made.
// A folder without one is never taken for a mirror once the store has
// mirrors: a disk that is not mounted leaves an empty mount point, which
// must not become an empty mirror on the file system beneath. The name
// starts with a dot, so it can never be a meta document's.
const markerFile = ".depot-mirror"

var errNoMarker = errors.New("folder has no mirror marker (disk not mounted?); to use it as a new, empty mirror, create meta/" + markerFile + " in it")

func (m *mirror) markerPath() string { return filepath.Join(m.root, metaDir, markerFile) }

func (m *mirror) hasMarker() bool {
	_, err := m.fs.Stat(m.markerPath())
	return err == nil
}

// isLegacy reports whether the folder holds a mirror made before markers
// existed: an index but no marker.
func (m *mirror) isLegacy() bool {
	_, err := m.fs.Stat(filepath.Join(m.root, indexFile))
	return err == nil && !m.hasMarker()
}

// writeMarker writes the marker durably.
func (m *mirror) writeMarker() error {
	f, err := m.fs.OpenFile(m.markerPath(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write marker of mirror %s: %w", m.root, err)
	}
	_, err = f.Write([]byte("depot mirror\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(m.fs, filepath.Join(m.root, metaDir))
	}
	if err != nil {
		return fmt.Errorf("write marker of mirror %s: %w", m.root, err)
	}
	return nil
}
