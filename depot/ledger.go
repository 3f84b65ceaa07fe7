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
// wants here, at a generation that only moves forward.
type Config struct {
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
	SHA256 string `json:"sha256"` // of the JSON encoding of Config
}

func encodeLedger(c Config) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	return json.Marshal(ledgerFile{Config: c, SHA256: hex.EncodeToString(sum[:])})
}

func decodeLedger(b []byte) (Config, error) {
	var f ledgerFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Config{}, fmt.Errorf("parse ledger: %w", err)
	}
	body, err := json.Marshal(f.Config)
	if err != nil {
		return Config{}, err
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != f.SHA256 {
		return Config{}, fmt.Errorf("ledger checksum does not match its content")
	}
	return f.Config, nil
}

// ledgerStore is what the ledger needs from the store.
type ledgerStore interface {
	WriteMeta(ctx context.Context, name string, data []byte) (int, error)
	ReadMeta(name string) []store.MetaCopy
}

// loadLedger returns the winning config (ok false when no mirror has a
// valid one) and rewrites every copy that is missing, corrupt or older.
// healthy is the number of mirrors that should hold a copy.
func loadLedger(ctx context.Context, st ledgerStore, healthy int, log *slog.Logger) (Config, bool, error) {
	var valid []Config
	for _, c := range st.ReadMeta(ledgerName) {
		if c.Err != nil {
			log.Warn("unreadable config ledger copy ignored", "mirror", c.Mirror, "err", c.Err)
			continue
		}
		cfg, err := decodeLedger(c.Data)
		if err != nil {
			log.Warn("corrupt config ledger copy ignored", "mirror", c.Mirror, "err", err)
			continue
		}
		valid = append(valid, cfg.normalize())
	}
	if len(valid) == 0 {
		return Config{}, false, nil
	}
	best := valid[0]
	for _, c := range valid[1:] {
		if c.Generation > best.Generation {
			best = c
		}
	}
	current := 0
	for _, c := range valid {
		if c.Generation == best.Generation && c.sameSet(best) {
			current++
		}
	}
	if current < healthy {
		data, err := encodeLedger(best)
		if err != nil {
			return Config{}, false, err
		}
		if _, err := st.WriteMeta(ctx, ledgerName, data); err != nil {
			return Config{}, false, fmt.Errorf("rewrite config ledger: %w", err)
		}
		log.Info("config ledger rewritten on every mirror", "generation", best.Generation)
	}
	return best, true, nil
}
