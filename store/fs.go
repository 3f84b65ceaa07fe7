package store

import (
	"io"
	"os"
)

// FS is the file-system surface a mirror uses for artifact files. Names are
// absolute paths inside the mirror. The operating system's implementation is
// the default; storetest wraps it to inject faults (ENOSPC, read-only, short
// writes, flipped bytes). The bbolt index is opened directly, not through FS.
type FS interface {
	// OpenFile is os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename is os.Rename; it must be atomic within one mirror.
	Rename(oldpath, newpath string) error
	// Remove is os.Remove.
	Remove(name string) error
	// MkdirAll is os.MkdirAll.
	MkdirAll(name string, perm os.FileMode) error
	// ReadDir is os.ReadDir.
	ReadDir(name string) ([]os.DirEntry, error)
	// Stat is os.Stat.
	Stat(name string) (os.FileInfo, error)
}

// IndexFS is implemented by an FS that also reaches a mirror's bbolt index,
// which does its own I/O through an *os.File and a memory map: OpenIndex
// opens the index file (bbolt's Options.OpenFile), and IndexUpdate is asked
// before every index transaction that writes; its error fails that
// transaction as a failed write to the index would. storetest's FaultFS
// implements it; OSFS does not need to.
type IndexFS interface {
	OpenIndex(name string, flag int, perm os.FileMode) (*os.File, error)
	IndexUpdate() error
}

// File is an open file of an FS. On the operating system's FS it is an
// *os.File, which lets readers of Blob use sendfile.
type File interface {
	io.Reader
	io.Writer
	io.Seeker
	io.Closer
	Sync() error
	Stat() (os.FileInfo, error)
	Name() string
}

// OSFS is the operating system's file system.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil File
	}
	return f, nil
}
func (OSFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (OSFS) Remove(name string) error                     { return os.Remove(name) }
func (OSFS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }
func (OSFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (OSFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

// syncDir makes a rename or unlink in dir durable.
func syncDir(fsys FS, dir string) error {
	d, err := fsys.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
