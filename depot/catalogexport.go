package depot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"depot/depot/randid"
)

// A catalog moves between backends (bbolt to etcd and back) as an export:
// JSON lines, every key and value of every bucket copied raw, so the audit
// chain's hashes, the generation and the catalog id survive unchanged.
//
//	{"format":"depot-catalog-export","version":1,"catalog_id":"…","export_id":"…","exported_at":"…"}
//	{"bucket":"repos","key":"<base64>","value":"<base64>"}   one line a key
//	{"end":true,"records":N,"sha256":"<hex of the record lines>"}
//
// The end line makes a truncated file detectable. An import goes only into
// an empty catalog. etcd bounds a transaction's writes, so an import is
// written in chunks: its first transaction writes an import marker, its
// last deletes it. While the marker is there the catalog cannot be opened
// (a coordinator would serve half a catalog), and an import of the same
// export (same export_id) completes it; any other import is refused.

// ErrCatalogNotEmpty is returned by ImportCatalog when the destination
// already holds a catalog (or another export's half-done import).
var ErrCatalogNotEmpty = errors.New("destination catalog is not empty")

const (
	exportFormat  = "depot-catalog-export"
	exportVersion = 1
	// exportMaxLine bounds one line of an export file (a value in etcd is
	// at most 1.5 MiB by default, base64 makes it 4/3 larger).
	exportMaxLine = 8 << 20
	// importChunk is the most writes of one import transaction, under
	// maxTxnOps with the marker check and etcd's head key.
	importChunk = 100
	// importChunkBytes bounds the keys and values of one import
	// transaction, well under etcd's default request limit (1.5 MiB); a
	// larger single record goes alone.
	importChunkBytes = 512 << 10
)

// keyImportMarker, in the meta bucket, is present while an import is
// under way.
var keyImportMarker = []byte("import_incomplete")

type exportHeader struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	CatalogID  string    `json:"catalog_id"`
	ExportID   string    `json:"export_id"`
	ExportedAt time.Time `json:"exported_at"`
}

type exportRecord struct {
	Bucket string `json:"bucket"`
	Key    []byte `json:"key"`
	Value  []byte `json:"value"`
}

type exportEnd struct {
	End     bool   `json:"end"`
	Records int    `json:"records"`
	SHA256  string `json:"sha256"`
}

// ExportSummary describes an export written or imported.
type ExportSummary struct {
	CatalogID string
	ExportID  string
	Records   int
	Buckets   map[string]int // records a bucket
}

// CatalogStorage is a catalog's buckets opened for export or import,
// without the catalog's rules (opening a Catalog would give an empty one
// an id).
type CatalogStorage struct{ kv catalogKV }

// OpenCatalogFile opens the bbolt catalog at path. Unless create is set,
// a missing file is an error. Another process holding the file fails
// with store.ErrLocked.
func OpenCatalogFile(path string, create bool, lockTimeout time.Duration) (*CatalogStorage, error) {
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", path, err)
		}
	}
	kv, err := openBoltKV(path, lockTimeout)
	if err != nil {
		return nil, err
	}
	return &CatalogStorage{kv: kv}, nil
}

// OpenEtcdCatalogStorage connects to the catalog under opts.Prefix.
func OpenEtcdCatalogStorage(ctx context.Context, opts EtcdOptions) (*CatalogStorage, error) {
	kv, err := openEtcdKV(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &CatalogStorage{kv: kv}, nil
}

// Where names the storage for messages.
func (s *CatalogStorage) Where() string { return s.kv.where() }

// Close closes the storage.
func (s *CatalogStorage) Close() error { return s.kv.close() }

// ExportCatalog writes every bucket of the catalog in s to w, read in one
// transaction (one snapshot). A catalog without an id, or with an import
// under way, is refused.
func ExportCatalog(ctx context.Context, s *CatalogStorage, w io.Writer) (ExportSummary, error) {
	sum := ExportSummary{ExportID: randid.New(), Buckets: make(map[string]int)}
	bw := bufio.NewWriter(w)
	h := sha256.New()
	err := s.kv.view(ctx, func(tx kvTx) error {
		if tx.Bucket(bucketMeta).Get(keyImportMarker) != nil {
			return fmt.Errorf("catalog %s holds a half-done import; complete it (import the same file again) before exporting", s.kv.where())
		}
		id := tx.Bucket(bucketIdentity).Get(keyCatalogID)
		if id == nil {
			return fmt.Errorf("no catalog at %s (it has no catalog id)", s.kv.where())
		}
		sum.CatalogID = string(id)
		if err := writeJSONLine(bw, nil, exportHeader{Format: exportFormat, Version: exportVersion,
			CatalogID: sum.CatalogID, ExportID: sum.ExportID, ExportedAt: time.Now().UTC()}); err != nil {
			return err
		}
		for _, name := range catalogBuckets {
			if err := scanAll(tx.Bucket(name), func(k, v []byte) error {
				sum.Records++
				sum.Buckets[string(name)]++
				return writeJSONLine(bw, h, exportRecord{Bucket: string(name), Key: k, Value: v})
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ExportSummary{}, fmt.Errorf("export %s: %w", s.kv.where(), err)
	}
	if err := writeJSONLine(bw, nil, exportEnd{End: true, Records: sum.Records, SHA256: hex.EncodeToString(h.Sum(nil))}); err != nil {
		return ExportSummary{}, err
	}
	if err := bw.Flush(); err != nil {
		return ExportSummary{}, fmt.Errorf("write export: %w", err)
	}
	return sum, nil
}

// scanAll reads a bucket page by page, so an etcd bucket is never fetched
// whole.
func scanAll(b kvBucket, fn func(k, v []byte) error) error {
	const page = 256
	var from []byte
	for {
		n := 0
		var last []byte
		if err := b.Scan(from, page, func(k, v []byte) error {
			n++
			last = bytes.Clone(k)
			return fn(k, v)
		}); err != nil {
			return err
		}
		if n < page {
			return nil
		}
		from = append(last, 0)
	}
}

func writeJSONLine(w io.Writer, h io.Writer, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if h != nil {
		h.Write(line)
	}
	if _, err := w.Write(line); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	return nil
}

// ImportCatalog reads an export from r and writes it into the catalog in
// s, which must be empty, or hold a half-done import of the same export
// (which this completes). The export is first copied to a temporary file
// in tmpDir ("" for the system's) and checked whole, so a truncated or
// corrupt file changes nothing.
func ImportCatalog(ctx context.Context, s *CatalogStorage, r io.Reader, tmpDir string) (ExportSummary, error) {
	f, err := os.CreateTemp(tmpDir, "depot-import-*.jsonl")
	if err != nil {
		return ExportSummary{}, fmt.Errorf("import: temporary file: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	sum, err := readExport(io.TeeReader(r, f), nil)
	if err != nil {
		return ExportSummary{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ExportSummary{}, fmt.Errorf("import: %w", err)
	}
	marker, err := json.Marshal(struct {
		ExportID  string `json:"export_id"`
		CatalogID string `json:"catalog_id"`
	}{sum.ExportID, sum.CatalogID})
	if err != nil {
		return ExportSummary{}, err
	}
	where := s.kv.where()
	// The first transaction claims the destination: empty, or our own
	// half-done import.
	if err := s.kv.update(ctx, func(tx kvTx) error {
		meta := tx.Bucket(bucketMeta)
		if m := meta.Get(keyImportMarker); m != nil {
			if bytes.Equal(m, marker) {
				return nil // resume
			}
			return fmt.Errorf("%w: %s holds a half-done import of another export (%s); import that file again to complete it", ErrCatalogNotEmpty, where, m)
		}
		for _, name := range catalogBuckets {
			if k, _ := tx.Bucket(name).First(); k != nil {
				return fmt.Errorf("%w: %s already holds a catalog (bucket %s has keys); import only into a new catalog (a new file, or an unused --etcd-prefix)", ErrCatalogNotEmpty, where, name)
			}
		}
		return meta.Put(keyImportMarker, marker)
	}); err != nil {
		return ExportSummary{}, fmt.Errorf("import into %s: %w", where, err)
	}
	var chunk []exportRecord
	chunkBytes := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := s.kv.update(ctx, func(tx kvTx) error {
			if !bytes.Equal(tx.Bucket(bucketMeta).Get(keyImportMarker), marker) {
				return errors.New("the import marker changed under this import")
			}
			for _, rec := range chunk {
				if err := tx.Bucket([]byte(rec.Bucket)).Put(rec.Key, rec.Value); err != nil {
					return err
				}
			}
			return nil
		})
		chunk, chunkBytes = chunk[:0], 0
		return err
	}
	if _, err := readExport(f, func(rec exportRecord) error {
		n := 256 + len(rec.Key) + len(rec.Value) // 256: key prefix and framing
		if len(chunk) > 0 && chunkBytes+n > importChunkBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		chunk = append(chunk, rec)
		chunkBytes += n
		if len(chunk) == importChunk {
			return flush()
		}
		return nil
	}); err != nil {
		return ExportSummary{}, fmt.Errorf("import into %s (the catalog is marked half-imported; run the import again to complete it): %w", where, err)
	}
	if err := flush(); err != nil {
		return ExportSummary{}, fmt.Errorf("import into %s (the catalog is marked half-imported; run the import again to complete it): %w", where, err)
	}
	if err := s.kv.update(ctx, func(tx kvTx) error {
		meta := tx.Bucket(bucketMeta)
		if !bytes.Equal(meta.Get(keyImportMarker), marker) {
			return errors.New("the import marker changed under this import")
		}
		return meta.Delete(keyImportMarker)
	}); err != nil {
		return ExportSummary{}, fmt.Errorf("import into %s (the catalog is marked half-imported; run the import again to complete it): %w", where, err)
	}
	return sum, nil
}

// readExport parses and checks an export, calling fn (if not nil) for
// each record in order. Nothing in the file is echoed into an error.
func readExport(r io.Reader, fn func(exportRecord) error) (ExportSummary, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), exportMaxLine)
	line := 0
	bad := func(what string) error { return fmt.Errorf("export file, line %d: %s", line, what) }
	next := func() bool { line++; return sc.Scan() }
	if !next() {
		if err := sc.Err(); err != nil {
			return ExportSummary{}, bad(err.Error())
		}
		return ExportSummary{}, errors.New("export file is empty")
	}
	var hd exportHeader
	if err := json.Unmarshal(sc.Bytes(), &hd); err != nil || hd.Format != exportFormat {
		return ExportSummary{}, bad("not a depot catalog export (no header)")
	}
	if hd.Version != exportVersion {
		return ExportSummary{}, bad(fmt.Sprintf("export version %d; this depotd reads version %d", hd.Version, exportVersion))
	}
	if !ValidCatalogID(hd.CatalogID) || hd.ExportID == "" || len(hd.ExportID) > 64 {
		return ExportSummary{}, bad("malformed catalog_id or export_id in the header")
	}
	sum := ExportSummary{CatalogID: hd.CatalogID, ExportID: hd.ExportID, Buckets: make(map[string]int)}
	h := sha256.New()
	sawID := false
	for next() {
		raw := sc.Bytes()
		var end exportEnd
		if json.Unmarshal(raw, &end) == nil && end.End {
			if end.Records != sum.Records || end.SHA256 != hex.EncodeToString(h.Sum(nil)) {
				return ExportSummary{}, bad("record count or checksum does not match the records: the file is corrupt")
			}
			if next() {
				return ExportSummary{}, bad("data after the end line")
			}
			if !sawID {
				return ExportSummary{}, errors.New("export file has no catalog id record")
			}
			return sum, nil
		}
		var rec exportRecord
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return ExportSummary{}, bad("malformed record")
		}
		if !slices.ContainsFunc(catalogBuckets, func(b []byte) bool { return string(b) == rec.Bucket }) {
			return ExportSummary{}, bad("unknown bucket")
		}
		if len(rec.Key) == 0 {
			return ExportSummary{}, bad("empty key")
		}
		if rec.Bucket == string(bucketMeta) && bytes.Equal(rec.Key, keyImportMarker) {
			return ExportSummary{}, bad("an import marker is not catalog data")
		}
		if rec.Bucket == string(bucketIdentity) && bytes.Equal(rec.Key, keyCatalogID) {
			if string(rec.Value) != hd.CatalogID {
				return ExportSummary{}, bad("the catalog id record differs from the header's")
			}
			sawID = true
		}
		h.Write(raw)
		h.Write([]byte{'\n'})
		sum.Records++
		sum.Buckets[rec.Bucket]++
		if fn != nil {
			if err := fn(rec); err != nil {
				return ExportSummary{}, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return ExportSummary{}, bad(err.Error())
	}
	return ExportSummary{}, errors.New("export file is truncated (no end line)")
}

// checkNoImport refuses a catalog an import is still writing: serving it
// would serve part of a catalog (and give it a new id).
func checkNoImport(ctx context.Context, kv catalogKV) error {
	return kv.view(ctx, func(tx kvTx) error {
		if tx.Bucket(bucketMeta).Get(keyImportMarker) != nil {
			return fmt.Errorf("catalog %s holds a half-done import: run `depotd catalog import` again with the same file to complete it", kv.where())
		}
		return nil
	})
}
