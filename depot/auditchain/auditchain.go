// Package auditchain is the hash chain of the coordinator's audit log: how
// a record's hash is computed from the previous one and the record's
// stored bytes, how a record travels (its stored JSON with the hash
// appended) and how a reader checks a run of records. It imports only the
// standard library, so the daemon that writes the chain and the CLI that
// verifies it share one definition.
//
// # Basics
//
// A record is stored as its canonical JSON body: one compact object whose
// fields come in a fixed order (seq, time, actor, source, request_id,
// action, target, outcome, prev), written once by the catalog and never
// re-marshalled. Its hash is
//
//	SHA-256("depot-audit-v1\x00" || prev || body)
//
// where prev is the previous record's hash as 32 raw bytes (all zero for
// the first record, seq 1) and body the stored bytes. On the wire a record
// is the body with `,"hash":"<64 hex>"` inserted before its closing brace;
// [Split] takes it apart again byte for byte.
//
// # Caveats
//
// A chain proves that no record was changed, inserted or removed in the
// middle. Whoever can rewrite the catalog file can rebuild the whole chain
// from a point on, and can drop records from the end: keep the head (seq
// and hash, as [Verifier.Head] reports it, a [Checkpoint]) somewhere else
// and check later that the chain still passes through it.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// domain separates audit hashes from every other SHA-256 in the project;
// the version changes if the body's layout ever does.
const domain = "depot-audit-v1\x00"

// Hash is a record's hash.
type Hash [32]byte

// String returns the hash as 64 lowercase hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("audit hash %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("audit hash %q: want 64 hex digits", s)
	}
	return h, nil
}

// Sum returns the hash of a record whose stored body is body and whose
// predecessor's hash is prev.
func Sum(prev Hash, body []byte) Hash {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(prev[:])
	h.Write(body)
	var out Hash
	h.Sum(out[:0])
	return out
}

// Line returns the wire form of a record: body (a JSON object) with the
// hash field added last. body is not modified.
func Line(body []byte, h Hash) []byte {
	out := make([]byte, 0, len(body)+len(`,"hash":""`)+64)
	out = append(out, body[:len(body)-1]...)
	out = append(out, `,"hash":"`...)
	out = append(out, h.String()...)
	return append(out, `"}`...)
}

// hashSuffixLen is len(`,"hash":"<64 hex>"}`).
const hashSuffixLen = len(`,"hash":""}`) + 64

// ErrMalformed is returned by Split for a line that is not a record in
// wire form.
var ErrMalformed = errors.New("malformed audit record")

// Split undoes Line: the stored body and the hash the line carries.
func Split(line []byte) (body []byte, h Hash, err error) {
	line = bytes.TrimSpace(line)
	if len(line) < hashSuffixLen+2 || !bytes.HasPrefix(line[len(line)-hashSuffixLen:], []byte(`,"hash":"`)) ||
		!bytes.HasSuffix(line, []byte(`"}`)) {
		return nil, h, fmt.Errorf("%w: it does not end with its hash field", ErrMalformed)
	}
	hexHash := line[len(line)-hashSuffixLen+len(`,"hash":"`) : len(line)-2]
	h, err = ParseHash(string(hexHash))
	if err != nil {
		return nil, h, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	body = make([]byte, 0, len(line)-hashSuffixLen+1)
	body = append(body, line[:len(line)-hashSuffixLen]...)
	return append(body, '}'), h, nil
}

// head is the part of a body the chain itself needs.
type head struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
}

// Verifier checks records in order, from seq 1. The zero value is ready.
// Not safe for concurrent use.
type Verifier struct {
	last Hash
	seq  uint64 // seq of the last record checked
}

// Mismatch is the first record that breaks the chain.
type Mismatch struct {
	Seq    uint64 // the record's position in the chain (the seq it should have)
	Reason string
}

func (m *Mismatch) Error() string {
	return fmt.Sprintf("audit record %d does not match the chain: %s", m.Seq, m.Reason)
}

// Next checks the next record in wire form: its seq follows the last one,
// its prev is the last one's hash, and its hash is Sum over its stored
// body. It returns a *Mismatch naming the record otherwise; after an
// error the Verifier stays at the last good record.
func (v *Verifier) Next(line []byte) error {
	want := v.seq + 1
	body, h, err := Split(line)
	if err != nil {
		return &Mismatch{Seq: want, Reason: err.Error()}
	}
	var hd head
	if err := json.Unmarshal(body, &hd); err != nil {
		return &Mismatch{Seq: want, Reason: "its body is not JSON"}
	}
	if hd.Seq != want {
		return &Mismatch{Seq: want, Reason: fmt.Sprintf("found seq %d where seq %d belongs (a record is missing or out of order)", hd.Seq, want)}
	}
	if hd.Prev != v.last.String() {
		return &Mismatch{Seq: want, Reason: "its prev is not the previous record's hash"}
	}
	if got := Sum(v.last, body); got != h {
		return &Mismatch{Seq: want, Reason: fmt.Sprintf("its content hashes to %s, but it carries %s (the record was changed)", got, h)}
	}
	v.last, v.seq = h, want
	return nil
}

// Head returns the seq and hash of the last record checked (0 and the zero
// hash before the first).
func (v *Verifier) Head() (uint64, Hash) { return v.seq, v.last }

// Checkpoint is a head kept outside the catalog: "SEQ:HASH".
type Checkpoint struct {
	Seq  uint64
	Hash Hash
}

// ParseCheckpoint parses "SEQ:HASH".
func ParseCheckpoint(s string) (Checkpoint, error) {
	var cp Checkpoint
	i := bytes.IndexByte([]byte(s), ':')
	if i <= 0 {
		return cp, fmt.Errorf("checkpoint %q: want SEQ:HASH", s)
	}
	if _, err := fmt.Sscanf(s[:i], "%d", &cp.Seq); err != nil || cp.Seq == 0 {
		return cp, fmt.Errorf("checkpoint %q: SEQ must be a positive integer", s)
	}
	h, err := ParseHash(s[i+1:])
	if err != nil {
		return cp, fmt.Errorf("checkpoint %q: %w", s, err)
	}
	cp.Hash = h
	return cp, nil
}

func (cp Checkpoint) String() string { return fmt.Sprintf("%d:%s", cp.Seq, cp.Hash) }
