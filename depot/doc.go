/*
Package depot is the domain of Depot: the sled service and the coordinator.

The sled service (Sled) wraps one sled's store with what a coordinator
drives it by: a generation-numbered artifact config kept as a ledger on
every mirror, a delete reconciler that removes what the config does not
list, and copy-from-depot jobs that fetch artifacts from peers.

The coordinator (Coordinator, Replicator) keeps the catalog of uploaded TUF
repositories and trusted roots (Catalog, bbolt), runs each upload as a saga
whose log survives crashes, and drives every sled until each holds every
wanted artifact: collect (put config, list), plan (Plan, a pure function),
execute (PUTs from the coordinator's copies, then copies between sleds).

# Guarantees

Generations only move forward: a sled refuses a config older than its own,
and refuses writes at any generation but its current one, so a stale
coordinator can neither delete what the current config wants nor write
what it no longer wants. The reconciler re-reads the config just before
each unlink. An upload that fails or crashes before it is recorded leaves
nothing behind; one recorded is replicated.

# Basics

	sled, _ := depot.NewSled(ctx, depot.SledOptions{Store: st, Peer: client})
	err := sled.SetConfig(ctx, depot.Config{Generation: 3, Artifacts: hashes})
	_, err = sled.Put(ctx, d, &gen, body, size)

# Caveats

depot knows nothing of HTTP: sleds and peers are reached through the
SledClient and Peer interfaces, which server/client implements.
*/
package depot
