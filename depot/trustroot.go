package depot

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// newUUID returns a random (version 4) UUID in its lower-case text form,
// the id omicron gives a trusted root.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand's Read never fails (it panics)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// legacyUUID is the id of a trusted root recorded before roots had UUIDs
// (keyed by the document's sha256): a name-based (version 8) UUID from the
// sha256, so it is the same at every read and never collides with a random
// one.
func legacyUUID(sha string) string {
	sum := sha256.Sum256([]byte("depot trust root " + sha))
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// decodeTrustRoot decodes a trust_roots record. A record from before
// UUIDs ({"id": sha256, "root": ...}) gets its sha256 from the old id
// and a legacyUUID.
func decodeTrustRoot(v []byte) (TrustRoot, error) {
	var rec struct {
		TrustRoot
		Legacy json.RawMessage `json:"root"`
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return TrustRoot{}, err
	}
	r := rec.TrustRoot
	if r.SHA256 == "" {
		r.SHA256, r.ID, r.Root = r.ID, legacyUUID(r.ID), rec.Legacy
	}
	return r, nil
}

// trustRootsIn returns every trusted root in the bucket, in key order.
func trustRootsIn(tx kvTx) ([]TrustRoot, error) {
	var out []TrustRoot
	err := tx.Bucket(bucketTrustRoots).ForEach(func(k, v []byte) error {
		r, err := decodeTrustRoot(v)
		if err != nil {
			return fmt.Errorf("decode trust root %s: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// trustRootByID finds the record whose id is id (a few roots: a scan), and
// its bucket key (the UUID, or the sha256 of a legacy record).
func trustRootByID(tx kvTx, id string) ([]byte, TrustRoot, error) {
	var key []byte
	var found TrustRoot
	err := tx.Bucket(bucketTrustRoots).ForEach(func(k, v []byte) error {
		if key != nil {
			return nil
		}
		r, err := decodeTrustRoot(v)
		if err != nil {
			return fmt.Errorf("decode trust root %s: %w", k, err)
		}
		if r.ID == id {
			key, found = bytes.Clone(k), r
		}
		return nil
	})
	if err == nil && key == nil {
		err = fmt.Errorf("%w: %q", ErrTrustRootNotFound, id)
	}
	return key, found, err
}
