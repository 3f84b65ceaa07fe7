// Package server is depotd's HTTP layer: the echo routes of the sled API
// (--listen) and of the read-only repo-depot API (--depot-listen), request
// ids and request logs, the body limits, the one error-mapping function, and
// graceful shutdown. The JSON bodies and the error table live in
// server/api; the Go client in server/client.
//
// # Basics
//
// Build a Server with New over a [Sled] (for an unmanaged sled:
// Unmanaged(*store.Store)), then Serve it on two listeners:
//
//	srv := server.New(server.Config{Sled: server.Unmanaged(st), Logger: log})
//	err := srv.Serve(ctx, sledLn, depotLn) // returns after ctx is done and in-flight requests ended
//
// Handlers parse (a hex digest becomes a store.Digest here and nowhere
// else), call the Sled, and return its error; the error handler maps it.
//
// # Caveats
//
// Upload bodies are streamed from the connection into the store and never
// buffered. There is no global read or write timeout, because uploads and
// downloads are long; instead each upload read must make progress within
// Config.BodyStallTimeout.
package server
