// Package storetest holds fault-injecting file systems for tests of the
// store and of everything built on it: a mirror that is read-only, full,
// fails after N bytes, fails fsyncs, fails index updates, fails reads or
// flips a byte on read, or a process that is out of file descriptors.
package storetest

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"depot/store"
)

// Faults is what a FaultFS does wrong. The zero value does nothing wrong.
type Faults struct {
	// ReadOnly fails every create, write, mkdir, rename, remove and index
	// update with EROFS.
	ReadOnly bool
	// NoSpace fails every write and index update with ENOSPC.
	NoSpace bool
	// FailWritesAfter fails writes with EIO once this many bytes were
	// written through the FS (counted from when it was set); 0 = never.
	FailWritesAfter int64
	// HangWrites, when not nil, blocks every write until it is closed: a
	// disk that stops answering.
	HangWrites chan struct{}
	// FailSync fails every fsync, of files and of folders, with EIO.
	FailSync bool
	// FailIndex fails every index update with EIO.
	FailIndex bool
	// OpenErr, when not zero, fails every open (files, folders, the index)
	// with it: EMFILE mimics a process out of descriptors, EIO a dead disk.
	OpenErr syscall.Errno
	// FlipOnRead flips the first byte of every read of an artifact file.
	FlipOnRead bool
	// FailReads fails every read, and every folder listing, with EIO.
	FailReads bool
	// FailStatOf fails, with EIO, every Stat of a path with this base name
	// (e.g. "index.db": the index inode that vanish detection reads).
	FailStatOf string
}

// Kinds names one Faults value per kind of fault, for suites that run the
// store under each in turn.
func Kinds() map[string]Faults {
	return map[string]Faults{
		"read-only":       {ReadOnly: true},
		"no-space":        {NoSpace: true},
		"eio-after-write": {FailWritesAfter: 1},
		"fsync-fails":     {FailSync: true},
		"index-fails":     {FailIndex: true},
		"open-eio":        {OpenErr: syscall.EIO},
		"out-of-fds":      {OpenErr: syscall.EMFILE},
		"flip-on-read":    {FlipOnRead: true},
		"reads-fail":      {FailReads: true},
	}
}

// FaultFS wraps a store.FS and breaks it as its Faults say. Safe for
// concurrent use; Set may be called while the store runs.
type FaultFS struct {
	store.FS
	mu      sync.Mutex
	faults  Faults
	written int64
}

var (
	_ store.FS      = (*FaultFS)(nil)
	_ store.IndexFS = (*FaultFS)(nil)
)

// New wraps the operating system's file system.
func New() *FaultFS { return &FaultFS{FS: store.OSFS{}} }

// Set replaces the faults and restarts the byte count of FailWritesAfter.
func (f *FaultFS) Set(faults Faults) {
	f.mu.Lock()
	f.faults = faults
	f.written = 0
	f.mu.Unlock()
}

func (f *FaultFS) get() Faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults
}

// Stat is the wrapped Stat, failed as FailStatOf says.
func (f *FaultFS) Stat(name string) (os.FileInfo, error) {
	if of := f.get().FailStatOf; of != "" && filepath.Base(name) == of {
		return nil, &os.PathError{Op: "stat", Path: name, Err: syscall.EIO}
	}
	return f.FS.Stat(name)
}

const writeFlags = os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_TRUNC | os.O_APPEND

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (store.File, error) {
	faults := f.get()
	if faults.OpenErr != 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: faults.OpenErr}
	}
	if faults.ReadOnly && flag&writeFlags != 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS}
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// OpenIndex opens a mirror's index file, failing as OpenFile does.
func (f *FaultFS) OpenIndex(name string, flag int, perm os.FileMode) (*os.File, error) {
	faults := f.get()
	if faults.OpenErr != 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: faults.OpenErr}
	}
	if faults.ReadOnly && flag&os.O_CREATE != 0 {
		if _, err := os.Stat(name); err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS}
		}
	}
	return os.OpenFile(name, flag, perm)
}

// IndexUpdate fails an index transaction under ReadOnly, NoSpace and
// FailIndex.
func (f *FaultFS) IndexUpdate() error {
	faults := f.get()
	switch {
	case faults.ReadOnly:
		return &os.PathError{Op: "write", Path: "index", Err: syscall.EROFS}
	case faults.NoSpace:
		return &os.PathError{Op: "write", Path: "index", Err: syscall.ENOSPC}
	case faults.FailIndex:
		return &os.PathError{Op: "write", Path: "index", Err: syscall.EIO}
	}
	return nil
}

func (f *FaultFS) Rename(oldpath, newpath string) error {
	if f.get().ReadOnly {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EROFS}
	}
	return f.FS.Rename(oldpath, newpath)
}

func (f *FaultFS) Remove(name string) error {
	if f.get().ReadOnly {
		return &os.PathError{Op: "remove", Path: name, Err: syscall.EROFS}
	}
	return f.FS.Remove(name)
}

func (f *FaultFS) MkdirAll(name string, perm os.FileMode) error {
	if f.get().ReadOnly {
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			return nil // MkdirAll of an existing folder succeeds on a read-only mount
		}
		return &os.PathError{Op: "mkdir", Path: name, Err: syscall.EROFS}
	}
	return f.FS.MkdirAll(name, perm)
}

func (f *FaultFS) ReadDir(name string) ([]os.DirEntry, error) {
	faults := f.get()
	if faults.FailReads {
		return nil, &os.PathError{Op: "readdirent", Path: name, Err: syscall.EIO}
	}
	if faults.OpenErr != 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: faults.OpenErr}
	}
	return f.FS.ReadDir(name)
}

type faultFile struct {
	store.File
	fs *FaultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	faults := f.fs.faults
	var fail error
	switch {
	case faults.ReadOnly:
		fail = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EROFS}
	case faults.NoSpace:
		fail = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	case faults.FailWritesAfter > 0 && f.fs.written+int64(len(p)) > faults.FailWritesAfter:
		fail = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EIO}
	}
	if fail == nil {
		f.fs.written += int64(len(p))
	}
	f.fs.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	if faults.HangWrites != nil {
		<-faults.HangWrites
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if f.fs.get().FailSync {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

func (f *faultFile) Read(p []byte) (int, error) {
	faults := f.fs.get()
	if faults.FailReads {
		return 0, &os.PathError{Op: "read", Path: f.Name(), Err: syscall.EIO}
	}
	n, err := f.File.Read(p)
	if faults.FlipOnRead && n > 0 {
		p[0] ^= 0xff
	}
	return n, err
}

// IsFault reports whether err came from an injected fault.
func IsFault(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, syscall.EMFILE)
}
