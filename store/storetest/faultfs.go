// Package storetest holds fault-injecting file systems for tests of the
// store and of everything built on it: a mirror that is read-only, full,
// fails after N bytes, or flips a byte on read.
package storetest

import (
	"errors"
	"os"
	"sync"
	"syscall"

	"depot/store"
)

// Faults is what a FaultFS does wrong. The zero value does nothing wrong.
type Faults struct {
	// ReadOnly fails every create, write, rename and remove with EROFS.
	ReadOnly bool
	// NoSpace fails every write with ENOSPC.
	NoSpace bool
	// FailWritesAfter fails writes with EIO once this many bytes were
	// written through the FS (counted from when it was set); 0 = never.
	FailWritesAfter int64
	// FlipOnRead flips the first byte of every read of an artifact file.
	FlipOnRead bool
	// FailReads fails every read with EIO.
	FailReads bool
}

// FaultFS wraps a store.FS and breaks it as its Faults say. Safe for
// concurrent use; Set may be called while the store runs.
type FaultFS struct {
	store.FS
	mu      sync.Mutex
	faults  Faults
	written int64
}

var _ store.FS = (*FaultFS)(nil)

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

var errEROFS = &os.PathError{Op: "write", Path: "(fault)", Err: syscall.EROFS}

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (store.File, error) {
	if f.get().ReadOnly && flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE) != 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS}
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
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
		fail = errEROFS
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
	return f.File.Write(p)
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
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO)
}
