// Package api is the wire contract of the sled and repo-depot HTTP APIs,
// shared by the server and its Go client so the two cannot drift: the JSON
// bodies, the error codes and one sentinel error per code. It imports only
// the standard library, so a client links no domain package.
//
// # Basics
//
// The bodies that carry domain values (Config, CopyJob, Repo,
// ReplicationStatus, ...) mirror the depot and store types field for
// field; the server converts into them, and its tests check that the
// JSON is byte for byte the domain type's. Digest is the wire form of an
// artifact's SHA-256.
//
// The client's errors unwrap to the sentinel of their error_code
// (ErrForCode), so errors.Is(err, api.ErrHashMismatch) holds for a
// HASH_MISMATCH answer.
//
// # Caveats
//
// Which domain error becomes which code is the server's table
// (server/errtable.go), not this package's. Several domain errors share a
// code: every NOT_FOUND (artifact, copy job, repository, trust root, sled)
// is ErrNotFound here; server/remote maps codes back to the depot and
// store sentinels for the depot package's own callers.
package api
