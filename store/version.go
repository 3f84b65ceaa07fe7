package store

// Version returns a number that changes whenever what List returns may
// have changed: an artifact indexed or removed on a mirror, or a mirror
// turning healthy or unhealthy. Callers cache what they derive from List
// (such as an encoded listing) and derive it again when Version moves.
// Read Version before List: a change that lands between the two then moves
// Version again, so the cache is refreshed on the next call.
func (s *Store) Version() uint64 { return s.changes.Load() }
