package depot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"depot/store"
)

// The artifact config is kept as a ledger document on every mirror, so the
// config survives as long as one mirror the store opens keeps a valid copy. Each copy carries the
// sha256 of its content: a truncated or bit-flipped copy is recognised and
// ignored. At start-up the highest valid generation found on any mirror
// wins and every other copy is rewritten to match.
const ledgerName = "artifacts-config.json"

// Config is a sled's artifact config: the set of artifacts a coordinator
// wants here, at a generation that only moves forward. On the wire it is
// omicron's ArtifactConfig plus catalog_id, a field omicron's clients
// ignore: the catalog the config comes from ("" from a driver that names
// none, such as omicron's Nexus). See CheckConfig.
type Config struct {
	CatalogID  string         `json:"catalog_id,omitempty"`
	Generation uint64         `json:"generation"`
	Artifacts  []store.Digest `json:"artifacts"`
}

// normalize sorts the set and drops duplicates, so equal sets compare equal.
func (c Config) normalize() Config {
	a := slices.Clone(c.Artifacts)
	slices.SortFunc(a, func(x, y store.Digest) int { return bytes.Compare(x[:], y[:]) })
	c.Artifacts = slices.Compact(a)
	if c.Artifacts == nil {
		c.Artifacts = []store.Digest{}
	}
	return c
}

func (c Config) sameSet(o Config) bool {
	return slices.Equal(c.normalize().Artifacts, o.normalize().Artifacts)
}

type ledgerFile struct {
	Config Config `json:"config"`
	SHA256 string `json:"sha256"` // of ledgerSum's input
	// Seq counts the sled's ledger writes; the highest valid one wins at
	// start-up. Generations alone cannot order copies once a config may
	// move to another catalog (AdoptCatalog restarts at generation 0).
	// Copies written before Seq existed have none and lose to any that
	// has one; among themselves the highest generation wins.
	Seq uint64 `json:"seq,omitempty"`
}

// ledgerSum is the checksum of a ledger copy: the sha256 of the JSON of its
// config, followed by a newline and the sequence number when there is one.
func ledgerSum(c Config, seq uint64) (string, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	if seq > 0 {
		body = fmt.Appendf(body, "\n%d", seq)
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:]), nil
}

func encodeLedger(c Config, seq uint64) ([]byte, error) {
	sum, err := ledgerSum(c, seq)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ledgerFile{Config: c, SHA256: sum, Seq: seq})
}

func decodeLedger(b []byte) (Config, uint64, error) {
	var f ledgerFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Config{}, 0, fmt.Errorf("parse ledger: %w", err)
	}
	sum, err := ledgerSum(f.Config, f.Seq)
	if err != nil {
		return Config{}, 0, err
	}
	if sum != f.SHA256 {
		return Config{}, 0, fmt.Errorf("ledger checksum does not match its content")
	}
	return f.Config, f.Seq, nil
}

// ledgerStore is what the ledger needs from the store.
type ledgerStore interface {
	WriteMeta(ctx context.Context, name string, data []byte) (int, error)
	ReadMeta(name string) []store.MetaCopy
}

// loadLedger returns the winning config and its sequence number (ok false
// when no mirror has a valid one) and rewrites every copy that is missing,
// corrupt or older. healthy is the number of mirrors that should hold a
// copy.
func loadLedger(ctx context.Context, st ledgerStore, healthy int, log *slog.Logger) (Config, uint64, bool, error) {
	type copyOf struct {
		cfg Config
		seq uint64
	}
	var valid []copyOf
	for _, c := range st.ReadMeta(ledgerName) {
		if c.Err != nil {
			log.Warn("unreadable config ledger copy ignored", "mirror", c.Mirror, "err", c.Err)
			continue
		}
		cfg, seq, err := decodeLedger(c.Data)
		if err != nil {
			log.Warn("corrupt config ledger copy ignored", "mirror", c.Mirror, "err", err)
			continue
		}
		valid = append(valid, copyOf{cfg.normalize(), seq})
	}
	if len(valid) == 0 {
		return Config{}, 0, false, nil
	}
	best := valid[0]
	for _, c := range valid[1:] {
		if c.seq > best.seq || (c.seq == best.seq && c.cfg.Generation > best.cfg.Generation) {
			best = c
		}
	}
	current := 0
	for _, c := range valid {
		if c.seq == best.seq && c.cfg.CatalogID == best.cfg.CatalogID &&
			c.cfg.Generation == best.cfg.Generation && c.cfg.sameSet(best.cfg) {
			current++
		}
	}
	if current < healthy {
		data, err := encodeLedger(best.cfg, best.seq)
		if err != nil {
			return Config{}, 0, false, err
		}
		if _, err := st.WriteMeta(ctx, ledgerName, data); err != nil {
			return Config{}, 0, false, fmt.Errorf("rewrite config ledger: %w", err)
		}
		log.Info("config ledger rewritten on every mirror", "generation", best.cfg.Generation)
	}
	return best.cfg, best.seq, true, nil
}
