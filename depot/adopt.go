package depot

import (
	"context"
	"fmt"
)

// NoCatalog names, for AdoptCatalog's from, a config that names no
// catalog (omicron-driven, or written before catalogs had ids).
const NoCatalog = "none"

// AdoptCatalog moves the sled to the catalog to: the admin act that
// CheckConfig leaves to people, never to a generation number. from must be
// the catalog the sled serves now (NoCatalog for a config that names
// none), else ErrCatalogMismatch; a sled that already serves to is left
// alone, so the act may be repeated. An unmanaged sled has nothing to
// move (ErrNoConfig): the first catalog that configures it takes it.
//
// The sled keeps its set, so its reconciler deletes nothing, at
// generation 0, below every generation of its new catalog: that
// catalog's next config replaces it, whatever its generation. The move is
// written to the ledger like any config and logged.
func (s *Sled) AdoptCatalog(ctx context.Context, from, to string) error {
	if !ValidCatalogID(to) {
		return fmt.Errorf("catalog id %q must be 32 lowercase hex digits", to)
	}
	if from == "" || (from != NoCatalog && !ValidCatalogID(from)) {
		return fmt.Errorf("catalog to move from %q must be a catalog id or %q", from, NoCatalog)
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	s.mu.RLock()
	cur, managed := s.cfg, s.managed
	s.mu.RUnlock()
	if !managed {
		return fmt.Errorf("%w: an unmanaged sled serves no catalog yet; the first catalog that configures it takes it", ErrNoConfig)
	}
	if cur.CatalogID == to {
		s.log.Info("sled already serves the catalog it is to adopt", "catalog_id", to, "generation", cur.Generation)
		return nil
	}
	have := cur.CatalogID
	if have == "" {
		have = NoCatalog
	}
	if have != from {
		return fmt.Errorf("%w: the sled serves catalog %s, not %s; nothing changed", ErrCatalogMismatch, have, from)
	}
	next := Config{CatalogID: to, Generation: 0, Artifacts: cur.Artifacts}.normalize()
	if err := s.installLocked(ctx, next); err != nil {
		return err
	}
	s.log.Warn("sled moved to another catalog by an admin", "from_catalog_id", have, "catalog_id", to,
		"previous_generation", cur.Generation, "artifacts", len(next.Artifacts))
	return nil
}
