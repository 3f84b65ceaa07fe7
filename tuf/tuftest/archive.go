package tuftest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zip"
	"github.com/klauspost/compress/zstd"
)

// Format is an archive format the builder writes.
type Format string

// Formats Open detects.
const (
	Zip    Format = "zip"
	Tar    Format = "tar"
	TarGz  Format = "tar.gz"
	TarZst Format = "tar.zst"
)

// Formats lists every Format, for table tests.
var Formats = []Format{Zip, Tar, TarGz, TarZst}

// EntryType is the kind of an archive entry. Hostile kinds exist so tests
// can build hostile archives.
type EntryType int

// Entry types.
const (
	Regular EntryType = iota
	Dir
	Symlink
	Hardlink // tar only
	Fifo
	CharDevice
)

// Entry is one archive entry.
type Entry struct {
	Name     string // written as is: no cleaning, so "../x" and "/x" stay hostile
	Type     EntryType
	Data     []byte           // content, unless Open is set
	Open     func() io.Reader // streamed content of Size bytes; closed after use if an io.Closer
	Size     int64            // with Open
	Linkname string           // Symlink, Hardlink
}

func (e Entry) size() int64 {
	if e.Open != nil {
		return e.Size
	}
	return int64(len(e.Data))
}

func (e Entry) copyTo(w io.Writer) error {
	if e.Open == nil {
		_, err := w.Write(e.Data)
		return err
	}
	r := e.Open()
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	n, err := io.Copy(w, r)
	if err == nil && n != e.Size {
		err = fmt.Errorf("entry %q: reader gave %d bytes, want %d", e.Name, n, e.Size)
	}
	return err
}

// modTime is fixed so archives are reproducible.
var modTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteArchive writes entries in format f to w, streaming each entry's
// content. store writes zip entries uncompressed (ignored for tar formats).
func WriteArchive(w io.Writer, f Format, entries []Entry, store bool) error {
	switch f {
	case Zip:
		return writeZip(w, entries, store)
	case Tar:
		return writeTar(w, entries)
	case TarGz:
		zw := gzip.NewWriter(w)
		if err := writeTar(zw, entries); err != nil {
			return err
		}
		return zw.Close()
	case TarZst:
		zw, err := zstd.NewWriter(w)
		if err != nil {
			return err
		}
		if err := writeTar(zw, entries); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	}
	return fmt.Errorf("tuftest: unknown format %q", f)
}

// Archive returns entries as an archive in format f, failing t on error.
func Archive(t testing.TB, f Format, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteArchive(&buf, f, entries, false); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeZip(w io.Writer, entries []Entry, store bool) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: modTime}
		if store {
			h.Method = zip.Store
		}
		content := e
		switch e.Type {
		case Regular:
			h.SetMode(0o644)
		case Dir:
			h.SetMode(fs.ModeDir | 0o755)
		case Symlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			content = Entry{Data: []byte(e.Linkname)}
		case Fifo:
			h.SetMode(fs.ModeNamedPipe | 0o644)
		case CharDevice:
			h.SetMode(fs.ModeDevice | fs.ModeCharDevice | 0o644)
		default:
			return fmt.Errorf("tuftest: zip cannot hold entry type %d", e.Type)
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if err := content.copyTo(fw); err != nil {
			return err
		}
	}
	return zw.Close()
}

func writeTar(w io.Writer, entries []Entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: 0o644, ModTime: modTime, Linkname: e.Linkname}
		switch e.Type {
		case Regular:
			h.Typeflag, h.Size = tar.TypeReg, e.size()
		case Dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case Symlink:
			h.Typeflag = tar.TypeSymlink
		case Hardlink:
			h.Typeflag = tar.TypeLink
		case Fifo:
			h.Typeflag = tar.TypeFifo
		case CharDevice:
			h.Typeflag = tar.TypeChar
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.Type == Regular {
			if err := e.copyTo(tw); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
