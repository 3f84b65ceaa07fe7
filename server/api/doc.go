// Package api is the wire contract of the sled and repo-depot HTTP APIs,
// shared by the server and its Go client so the two cannot drift: the JSON
// bodies, and the one table that maps domain errors to an HTTP status and an
// error_code and back.
//
// # Basics
//
// The server calls [ForError] to turn whatever a handler returned into a
// status, a code and a message; the client calls [ForCode] to turn a
// response's error_code back into the sentinel the server matched, so
// errors.Is(err, store.ErrHashMismatch) holds on both sides of the wire.
// Several sentinels may share a code (NOT_FOUND: artifacts, copy jobs,
// repositories, trust roots, sleds); ForCode returns the code's first
// entry, and a client call that knows what it looked for narrows NOT_FOUND
// to its own sentinel.
//
// # Caveats
//
// Messages of 5xx entries are fixed text: the real error only goes to the
// server's log. A 4xx message may be replaced per request with
// [WithMessage]; entries marked Public (the depot and tuf errors, written
// for operators) send the error's own text; nothing else of an error's
// text reaches the client.
package api
