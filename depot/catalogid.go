package depot

import (
	"context"
	"fmt"
	"regexp"

	"depot/depot/randid"
)

// A catalog's identity is a random id made once, when the catalog is
// created, and kept in its own bucket. Every config a coordinator writes
// carries it, and a sled that has a config takes a new one only from the
// same catalog (see CheckConfig): generations of two catalogs cannot be
// compared, so a second coordinator started by mistake cannot empty a
// rack by counting past the first one's generation.
var (
	bucketIdentity = []byte("identity")
	keyCatalogID   = []byte("catalog_id")
)

var catalogIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidCatalogID reports whether id has the form of a catalog id: 32
// lowercase hex digits.
func ValidCatalogID(id string) bool { return catalogIDPattern.MatchString(id) }

// loadID reads the catalog's id, making it first if the catalog has none
// (a new catalog, or one created before catalogs had ids).
func (c *Catalog) loadID(ctx context.Context) error {
	return c.kv.update(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketIdentity)
		if v := b.Get(keyCatalogID); v != nil {
			if !ValidCatalogID(string(v)) {
				return fmt.Errorf("catalog id %q is malformed", v)
			}
			c.id = string(v)
			return nil
		}
		id := randid.New()
		if err := b.Put(keyCatalogID, []byte(id)); err != nil {
			return err
		}
		c.id = id
		return nil
	})
}

// ID returns the catalog's id: 32 lowercase hex digits, the same for the
// catalog's whole life.
func (c *Catalog) ID() string { return c.id }

// configOf is the sled config of the wanted set w, from this catalog.
func (c *Catalog) configOf(w Wanted) Config {
	return Config{CatalogID: c.id, Generation: w.Generation, Artifacts: w.Sorted()}
}
