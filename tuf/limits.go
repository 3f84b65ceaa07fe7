package tuf

import "time"

// Default limits, used for every Limits field left at zero (or negative).
const (
	DefaultMaxEntries          = 10000
	DefaultMaxExpandedSize     = 16 << 30 // 16 GiB
	DefaultMaxMetadataSize     = 16 << 20 // 16 MiB
	DefaultMaxMetadataTotal    = 64 << 20 // 64 MiB
	DefaultMaxCompressionRatio = 1000
)

// Caps go-tuf's updater applies to root and timestamp metadata; a larger file
// is hostile, not merely big. Both are further capped by MaxMetadataSize.
const (
	rootMaxSize      = 512000
	timestampMaxSize = 16384
)

// Ratios are only enforced above this many expanded bytes: tiny files (and
// tar's zero padding) compress absurdly well and cannot hurt anyone.
const ratioFloor = 1 << 20

// Limits bound what an archive may contain. Zero fields take the defaults.
type Limits struct {
	MaxEntries      int   // entries of any kind, default 10000
	MaxExpandedSize int64 // total uncompressed bytes, default 16 GiB (ErrTooLarge)
	MaxMetadataSize int64 // per metadata file, default 16 MiB; root and timestamp are capped lower, as go-tuf's updater does
	// MaxCompressionRatio bounds uncompressed/compressed bytes per zip entry
	// and for a whole tar.gz/tar.zst stream, default 1000; only enforced
	// once more than 1 MiB has been expanded.
	MaxCompressionRatio int64
	// MaxMetadataTotal bounds the metadata files and the artifacts.json
	// candidates held in memory together, default 64 MiB.
	MaxMetadataTotal int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxExpandedSize <= 0 {
		l.MaxExpandedSize = DefaultMaxExpandedSize
	}
	if l.MaxMetadataSize <= 0 {
		l.MaxMetadataSize = DefaultMaxMetadataSize
	}
	if l.MaxCompressionRatio <= 0 {
		l.MaxCompressionRatio = DefaultMaxCompressionRatio
	}
	if l.MaxMetadataTotal <= 0 {
		l.MaxMetadataTotal = DefaultMaxMetadataTotal
	}
	return l
}

// Options tune Open.
type Options struct {
	Limits Limits
	// AllowExpired accepts metadata past its expiry date. Every other check
	// still applies.
	AllowExpired bool
	// Now is the reference time for expiry; nil means time.Now.
	Now func() time.Time
}
