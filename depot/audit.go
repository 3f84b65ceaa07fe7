package depot

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"depot/depot/auditchain"
)

// The audit log lives in the catalog's "audit" bucket: key the record's
// seq (8 bytes big-endian, so the cursor's order is the chain's), value
// the 32-byte hash followed by the record's canonical JSON body (see
// package auditchain). Records are appended inside the transaction of the
// change they describe, so a change without its record cannot be
// committed; catalog transactions are serialisable (bbolt runs one writer
// at a time; on etcd a transaction commits only if nothing committed
// since its first read), which serialises the chain's head.
var bucketAudit = []byte("audit")

// AuditEntry describes one operator request for the audit log: who, from
// where, what. The server fills it before calling a mutating catalog
// method; the method appends a record built from it in the same
// transaction as its change, and only when it changes something. An entry
// belongs to one request and is not safe for concurrent use.
type AuditEntry struct {
	Actor     string // "token:NAME", "cert:CN", "anonymous (loopback)", or "" when unknown
	Source    string // the client's IP address
	RequestID string
	Action    string // "repo.upload", "trust_root.add", ...
	Target    string // what the action names: a system version, sled id, token name ...
	// Status is the HTTP status the request answers when the change
	// succeeds; ErrorCode is "" then. For refused requests the server sets
	// both from its error table.
	Status    int
	ErrorCode string

	seq uint64 // set once the record is committed
}

// Recorded reports whether the entry's record was committed, and its seq.
func (e *AuditEntry) Recorded() (uint64, bool) { return e.seq, e.seq != 0 }

// AuditOutcome is a request's answer.
type AuditOutcome struct {
	Status    int    `json:"status"`
	ErrorCode string `json:"error_code"`
}

// auditBody is a record as it is hashed and stored. The field order is
// the canonical order; never reorder or re-marshal a stored body.
type auditBody struct {
	Seq       uint64       `json:"seq"`
	Time      string       `json:"time"`
	Actor     string       `json:"actor"`
	Source    string       `json:"source"`
	RequestID string       `json:"request_id"`
	Action    string       `json:"action"`
	Target    string       `json:"target"`
	Outcome   AuditOutcome `json:"outcome"`
	Prev      string       `json:"prev"`
}

// AuditRecord is one stored record, decoded; Line is its wire form (the
// stored body with its hash), which is what readers should pass on.
type AuditRecord struct {
	Seq  uint64
	Line []byte
}

// appendAudit appends e's record in tx. Callers pass a nil e for changes
// that no request made (flags at start-up, saga recovery): those append
// nothing.
func (c *Catalog) appendAudit(tx kvTx, e *AuditEntry) error {
	if e == nil {
		return nil
	}
	b := tx.Bucket(bucketAudit)
	var prev auditchain.Hash
	var seq uint64 = 1
	if k, v := b.Last(); k != nil {
		if len(k) != 8 || len(v) < 32 {
			return fmt.Errorf("append audit record: the last record (key %x) is malformed", k)
		}
		seq = binary.BigEndian.Uint64(k) + 1
		copy(prev[:], v[:32])
	}
	body, err := json.Marshal(auditBody{
		Seq: seq, Time: time.Now().UTC().Format(time.RFC3339Nano),
		Actor: e.Actor, Source: e.Source, RequestID: e.RequestID, Action: e.Action, Target: e.Target,
		Outcome: AuditOutcome{Status: e.Status, ErrorCode: e.ErrorCode},
		Prev:    prev.String(),
	})
	if err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	h := auditchain.Sum(prev, body)
	v := make([]byte, 0, 32+len(body))
	v = append(append(v, h[:]...), body...)
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	if err := b.Put(k[:], v); err != nil {
		return fmt.Errorf("append audit record %d: %w", seq, err)
	}
	tx.OnCommit(func() {
		e.seq = seq
		c.audit.notify()
	})
	return nil
}

// AppendAudit appends e's record on its own: for requests that changed
// nothing (refused, failed, or with nothing to do) and actions outside the
// catalog (a replication activation). It returns the record's seq.
func (c *Catalog) AppendAudit(ctx context.Context, e *AuditEntry) (uint64, error) {
	if err := c.kv.update(ctx, func(tx kvTx) error { return c.appendAudit(tx, e) }); err != nil {
		return 0, err
	}
	return e.seq, nil
}

// MaxAuditPage bounds the records one Audit call returns.
const MaxAuditPage = 1000

// Audit returns up to limit records with seq > since, in order (limit <= 0
// or over MaxAuditPage means MaxAuditPage), and the seq of the last record
// in the log (0 when it is empty).
func (c *Catalog) Audit(ctx context.Context, since uint64, limit int) ([]AuditRecord, uint64, error) {
	if limit <= 0 || limit > MaxAuditPage {
		limit = MaxAuditPage
	}
	var out []AuditRecord
	var head uint64
	err := c.kv.view(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketAudit)
		if k, _ := b.Last(); k != nil {
			head = binary.BigEndian.Uint64(k)
		}
		var start [8]byte
		binary.BigEndian.PutUint64(start[:], since+1)
		return b.Scan(start[:], limit, func(k, v []byte) error {
			if len(k) != 8 || len(v) < 32+2 {
				return fmt.Errorf("audit record %x is malformed", k)
			}
			var h auditchain.Hash
			copy(h[:], v[:32])
			// Values die with the transaction: Line copies the body.
			out = append(out, AuditRecord{Seq: binary.BigEndian.Uint64(k), Line: auditchain.Line(v[32:], h)})
			return nil
		})
	})
	return out, head, err
}

// AuditChanges returns a channel closed when the next audit record is
// committed; long-polls of the audit log wait on it.
func (c *Catalog) AuditChanges() <-chan struct{} { return c.audit.wait() }

// notifier wakes waiters at an event (a commit). Safe for
// concurrent use; the zero value is ready.
type notifier struct {
	mu sync.Mutex
	ch chan struct{} // guarded by mu; nil until someone waits
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}
