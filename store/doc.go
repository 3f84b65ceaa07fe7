/*
Package store keeps one sled's artifacts, named by SHA-256, durably on N
mirror directories (two M.2 devices on a real sled).

Every artifact is stored whole on every healthy mirror, each mirror with its
own bbolt index (digest → size, time added, time last verified), so each
mirror holds a complete copy. Open still needs every configured mirror: a
mirror whose folder cannot be created or whose index cannot be opened (held
by another process, or corrupt) fails start-up rather than being left out.
An operator can check a mirror with sha256sum: the file
<mirror>/artifacts/<xx>/<sha256> always hashes to its name.

# Guarantees

Nothing partial is ever visible. A write streams the body once through one
hash into a temp file on every mirror in parallel, checks digest and
length, then fsyncs, renames into place, fsyncs the folder and only then
indexes. At start-up temp files are cleared and index and files reconciled:
a file without an entry is re-hashed and adopted or removed, an entry
without a file dropped. Memory stays flat whatever the artifact size (a
few 256 KiB chunks in flight per write).

Put and scrub's repair share one write path (writeCopies). A write succeeds
when at least one mirror holds a verified copy. A mirror
that fails an I/O is marked unhealthy (logged once) and the others carry
on; a background check re-opens it when it comes back and a refill pass
copies what it lacks. Scrub re-hashes every copy at a bounded rate, removes
corrupt ones and repairs them from a copy that verifies.

# Basics

	s, err := store.Open(ctx, store.Options{Mirrors: []string{"data/m2a", "data/m2b"}})
	res, err := s.Put(ctx, digest, body, size) // res.SuccessfulWrites
	blob, err := s.Open(ctx, digest)           // blob.File is an *os.File
	err = s.Delete(ctx, digest)

# Caveats

Each mirror's index is locked (flock) while the store is open: a second
process fails with ErrLocked. Reads verify sizes, not hashes; a corrupt copy
of the right size is served until a scrub finds it, so readers that care
(peers copying) hash what they receive. A delete a failing mirror missed is
remembered in memory only; after a restart that mirror serves the artifact
again. Hashing goes through NewHash (digest.go), the one place that picks
the SHA-256 implementation.
*/
package store
