package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Each mirror's bbolt index has one bucket, artifacts: digest (32 bytes) →
// record (size, added, verified; 8 bytes each, big-endian, times in unix
// nanoseconds). The index is the truth about what a mirror holds; a file
// without a record is not served until start-up adopts it.
var bucketArtifacts = []byte("artifacts")

const recordLen = 24

// record is one artifact's entry in a mirror's index.
type record struct {
	Size     int64
	Added    time.Time
	Verified time.Time
}

func (r record) encode() []byte {
	b := make([]byte, recordLen)
	binary.BigEndian.PutUint64(b[0:], uint64(r.Size))
	binary.BigEndian.PutUint64(b[8:], uint64(r.Added.UnixNano()))
	binary.BigEndian.PutUint64(b[16:], uint64(r.Verified.UnixNano()))
	return b
}

func decodeRecord(b []byte) (record, error) {
	if len(b) != recordLen {
		return record{}, fmt.Errorf("index record is %d bytes, want %d", len(b), recordLen)
	}
	return record{
		Size:     int64(binary.BigEndian.Uint64(b[0:])),
		Added:    time.Unix(0, int64(binary.BigEndian.Uint64(b[8:]))),
		Verified: time.Unix(0, int64(binary.BigEndian.Uint64(b[16:]))),
	}, nil
}
