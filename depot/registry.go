package depot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Sled states in the registry.
const (
	SledInService = "in_service"
	SledExpunged  = "expunged" // no longer counted or contacted
)

// LocalSledID names the coordinator's own sled, always a member.
const LocalSledID = "local"

// SledRecord is one sled in the coordinator's registry.
type SledRecord struct {
	ID         string    `json:"id"`
	ControlURL string    `json:"control_url"`
	DepotURL   string    `json:"depot_url,omitempty"` // where peers copy from it; empty: never a copy source (a sled's own report is not trusted)
	State      string    `json:"state"`
	Added      time.Time `json:"added"`
}

// SledIDFor derives a stable id from a control URL, for sleds added by
// --sled without an explicit id.
func SledIDFor(controlURL string) string {
	sum := sha256.Sum256([]byte(strings.TrimRight(controlURL, "/")))
	return "sled-" + hex.EncodeToString(sum[:4])
}

func validateSled(r SledRecord) error {
	if r.ID == "" || r.ID == LocalSledID || strings.ContainsAny(r.ID, "/ ") {
		return fmt.Errorf("%w: sled id %q must be non-empty, without / or spaces, and not %q", ErrInvalidSled, r.ID, LocalSledID)
	}
	if err := validateBaseURL(r.ControlURL, false); err != nil {
		return fmt.Errorf("%w: control_url: %w", ErrInvalidSled, err)
	}
	if r.DepotURL != "" {
		if err := validateSource(r.DepotURL); err != nil {
			return fmt.Errorf("%w: depot_url: %w", ErrInvalidSled, err)
		}
	}
	if r.State != SledInService && r.State != SledExpunged {
		return fmt.Errorf("%w: state %q must be %q or %q", ErrInvalidSled, r.State, SledInService, SledExpunged)
	}
	return nil
}

// PutSled adds or updates a sled. An expunged sled stays expunged: it
// cannot be brought back under the same id (its data is gone for good).
// The change appends e's audit record.
func (c *Catalog) PutSled(ctx context.Context, r SledRecord, e *AuditEntry) (SledRecord, error) {
	if r.State == "" {
		r.State = SledInService
	}
	r.ControlURL = strings.TrimRight(r.ControlURL, "/")
	r.DepotURL = strings.TrimRight(r.DepotURL, "/")
	if err := validateSled(r); err != nil {
		return SledRecord{}, err
	}
	err := c.kv.update(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketSleds)
		if v := b.Get([]byte(r.ID)); v != nil {
			var old SledRecord
			if err := json.Unmarshal(v, &old); err != nil {
				return err
			}
			if old.State == SledExpunged && r.State != SledExpunged {
				return fmt.Errorf("%w: sled %s was expunged; add it under a new id", ErrInvalidSled, r.ID)
			}
			r.Added = old.Added
		} else {
			r.Added = time.Now().UTC()
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(r.ID), v); err != nil {
			return err
		}
		if err := bumpEpoch(tx); err != nil {
			return err
		}
		return c.appendAudit(tx, e)
	})
	return r, err
}

// Sleds returns the registry, sorted by id.
func (c *Catalog) Sleds(ctx context.Context) ([]SledRecord, error) {
	var out []SledRecord
	err := c.kv.view(ctx, func(tx kvTx) error {
		return tx.Bucket(bucketSleds).ForEach(func(k, v []byte) error {
			var r SledRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode sled %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Sled returns one sled, or ErrSledNotFound.
func (c *Catalog) Sled(ctx context.Context, id string) (SledRecord, error) {
	var r SledRecord
	err := c.kv.view(ctx, func(tx kvTx) error {
		v := tx.Bucket(bucketSleds).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: %q", ErrSledNotFound, id)
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// ExpungeSled marks a sled expunged: it is no longer counted or contacted.
// The change appends e's audit record.
func (c *Catalog) ExpungeSled(ctx context.Context, id string, e *AuditEntry) (SledRecord, error) {
	r, err := c.Sled(ctx, id)
	if err != nil {
		return r, err
	}
	r.State = SledExpunged
	return c.PutSled(ctx, r, e)
}

// ParseSledFlag parses --sled: a control URL, or
// "control=URL,depot=URL[,id=ID]".
func ParseSledFlag(v string) (SledRecord, error) {
	var r SledRecord
	if !strings.Contains(v, "=") {
		r.ControlURL = v
	} else {
		for _, part := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(part, "=")
			switch strings.TrimSpace(k) {
			case "control":
				r.ControlURL = val
			case "depot":
				r.DepotURL = val
			case "id":
				r.ID = val
			default:
				return r, fmt.Errorf("--sled %q: unknown key %q (want control=, depot=, id=)", v, k)
			}
		}
	}
	if _, err := url.Parse(r.ControlURL); err != nil || r.ControlURL == "" {
		return r, fmt.Errorf("--sled %q: no control URL", v)
	}
	if r.ID == "" {
		r.ID = SledIDFor(r.ControlURL)
	}
	r.State = SledInService
	return r, nil
}
