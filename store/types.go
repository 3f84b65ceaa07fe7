package store

import (
	"io"
	"log/slog"
	"time"
)

// Options configure Open.
type Options struct {
	// Mirrors are the mirror directories, created if missing. At least one.
	Mirrors []string
	// Logger receives mirror health changes and start-up findings. nil = slog.Default().
	Logger *slog.Logger
	// LockTimeout bounds the wait for another process's lock on a mirror
	// index. 0 = 1s.
	LockTimeout time.Duration
	// FS opens a mirror's file system; nil = the operating system's. Tests
	// use it to inject faults (see storetest).
	FS func(root string) FS
	// ProbeInterval is how often mirrors are checked for vanishing and for
	// recovery. 0 = 10s.
	ProbeInterval time.Duration
	// ScrubInterval is the time between background verify passes; 0 = only
	// when asked (StartScrub) or when a mirror comes back.
	ScrubInterval time.Duration
	// ScrubRate bounds scrub reads in bytes per second; 0 = unbounded.
	ScrubRate int64
}

// PutResult is what Put did.
type PutResult struct {
	Datasets         int // mirrors configured
	SuccessfulWrites int // mirrors holding a verified copy when Put returned
	Written          int // mirrors this call wrote (0 when every mirror already had it)
}

// Blob is an open artifact. File is an *os.File on the real file system, so
// copying it to a socket uses sendfile. The caller closes it.
type Blob struct {
	File    ReadSeekCloser
	Size    int64
	ModTime time.Time
	Mirror  string
}

// ReadSeekCloser is what Open returns.
type ReadSeekCloser interface {
	io.ReadSeeker
	io.Closer
}

// Info describes one stored artifact.
type Info struct {
	Digest   Digest
	Size     int64
	Copies   int // healthy mirrors whose index holds it
	Added    time.Time
	Verified time.Time
}

// MirrorStatus is one mirror's health, as shown in /status.
type MirrorStatus struct {
	Path          string    `json:"path"`
	Healthy       bool      `json:"healthy"`
	Artifacts     int       `json:"artifacts"`
	Bytes         int64     `json:"bytes"`
	Free          int64     `json:"free"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}
