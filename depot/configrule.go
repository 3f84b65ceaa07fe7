package depot

import "fmt"

// CheckConfig is the one rule for replacing a sled's config, used by the
// sled (SetConfig) and, before it writes anything, by the coordinator's
// collect, so both judge the same way. cur is the sled's config (nil while
// it is unmanaged) and next the one offered. It returns whether next
// changes anything, or why it is refused:
//
//   - an unmanaged sled takes any config;
//   - a sled whose config names a catalog takes only configs of that
//     catalog, else ErrCatalogMismatch naming both;
//   - a sled whose config names none (omicron-driven, or written before
//     catalogs had ids) takes configs that name none under the
//     generation rules; a config that names a catalog may claim it only
//     at the same generation with the same set, which changes nothing the
//     sled holds; anything else is ErrCatalogMismatch (an admin moves the
//     sled with Sled.AdoptCatalog);
//   - within one catalog a lower generation, or an equal one with another
//     set, is ErrConfigGeneration; the same generation and set is no
//     change; a higher one replaces the config.
//
// Nothing here compares generations of two catalogs: they count different
// histories.
func CheckConfig(cur *Config, next Config) (change bool, err error) {
	if cur == nil {
		return true, nil
	}
	switch {
	case cur.CatalogID != "" && next.CatalogID != cur.CatalogID:
		return false, fmt.Errorf("%w: the sled serves catalog %s; this config is from %s",
			ErrCatalogMismatch, cur.CatalogID, catalogName(next.CatalogID))
	case cur.CatalogID == "" && next.CatalogID != "":
		if next.Generation == cur.Generation && next.sameSet(*cur) {
			return true, nil // the catalog claims the config it already drives
		}
		return false, fmt.Errorf("%w: the sled's config (generation %d, %d artifacts) names no catalog; "+
			"catalog %s may claim it only with that generation and set; move the sled with depotd --adopt-catalog",
			ErrCatalogMismatch, cur.Generation, len(cur.Artifacts), next.CatalogID)
	}
	switch {
	case next.Generation < cur.Generation:
		return false, fmt.Errorf("%w: generation %d is older than the sled's %d", ErrConfigGeneration, next.Generation, cur.Generation)
	case next.Generation == cur.Generation && !next.sameSet(*cur):
		return false, fmt.Errorf("%w: generation %d is already in force with a different set of %d artifacts",
			ErrConfigGeneration, next.Generation, len(cur.Artifacts))
	case next.Generation == cur.Generation:
		return false, nil
	}
	return true, nil
}

// catalogName is id for messages, or a phrase for none.
func catalogName(id string) string {
	if id == "" {
		return "no catalog (no catalog_id)"
	}
	return "catalog " + id
}
