package depot

import (
	"bytes"
	"io"
	"testing"

	"depot/tuf"
	"depot/tuf/tuftest"
)

// onlySeeker hides bytes.Reader's ReadAt.
type onlySeeker struct{ io.ReadSeeker }

func TestSeekReaderAt_ReadsACaboose(t *testing.T) {
	data := tuftest.HubrisArchive(t, "gimlet-e", "gimlet-e", "", "1.0.0", 1)
	c, err := tuf.ReadHubrisCaboose(&seekReaderAt{rs: onlySeeker{bytes.NewReader(data)}}, int64(len(data)))
	if err != nil || c.Board != "gimlet-e" {
		t.Fatalf("caboose = %+v, %v", c, err)
	}
	var buf [8]byte
	r := &seekReaderAt{rs: onlySeeker{bytes.NewReader(data)}}
	if n, err := r.ReadAt(buf[:], int64(len(data))-4); n != 4 || err != io.EOF {
		t.Fatalf("short read at the end = %d, %v; want 4, io.EOF", n, err)
	}
}
