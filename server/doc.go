// Package server is depotd's HTTP layer: the echo routes of the sled API
// (--listen), of the read-only repo-depot API (--depot-listen) and, on a
// coordinator, of the operator API (--operator-listen), each with its own
// http.Server; request ids and request logs, metrics, the body limits and
// other bounds, the coordinator role on sled mutations, the one
// error-mapping function, long-polls, and graceful shutdown. The JSON bodies and the error table live in
// server/api; the Go client in server/client; the OpenAPI document, which
// the routes keep in step with, in server/openapi.
//
// # Basics
//
// Build a Server with New over a *depot.Sled (and, for the coordinator
// role, the *depot.Coordinator and its *depot.Replicator), then Serve it on
// its listeners (TLS listeners, when the daemon has certificates; nil
// operatorLn without the coordinator role):
//
//	srv := server.New(server.Config{Sled: sled, Coordinator: coord, Replicator: rep, Metrics: m, Logger: log})
//	err := srv.Serve(ctx, sledLn, depotLn, operatorLn) // returns after ctx is done and in-flight requests ended
//
// Handlers parse (a hex digest becomes a store.Digest here and nowhere
// else; generation and wait parameters, small JSON bodies), call the
// domain, and return its error; the error handler maps it through
// forError (errtable.go). Without a Coordinator every /v1 route answers 404
// NOT_COORDINATOR; on the sled listener /v1 always answers 404.
//
// Every operator route sits in one /v1 group behind authorize (auth.go):
// the caller is known by a bearer token (tokens file or catalog) or a
// verified client certificate with a depot://role/<role> URI SAN, and
// needs the route's role from operatorRules (routes missing from it are
// refused). Changes carry a depot.AuditEntry down to the catalog, which
// appends the audit record in the transaction of the change; refusals and
// requests that change nothing are recorded by authorize itself.
//
// Long-polls (GET /copies/{sha256}, GET
// /v1/system/update/repositories/{system_version}, GET
// /v1/replication/status, GET /v1/audit, each with ?wait=, at most
// api.MaxWait) answer as
// soon as their object changes, when the wait ends, or at once when
// shutdown begins.
//
// # Caveats
//
// Upload bodies (artifacts and repository archives) are streamed from the
// connection into the domain and never buffered. There is no global read
// or write timeout, because uploads and downloads are long; instead a body
// must average Config.MinBodyRate over each window (and move within
// Config.BodyStallTimeout), and a download's reader must take a chunk
// within Config.DownloadStallTimeout. Writes take one of Config.WriteSlots
// only after their first 16 KiB arrived.
package server
