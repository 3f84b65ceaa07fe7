/*
Package depot is the domain of Depot: the sled service and the coordinator
that drives a rack of them. It knows nothing of HTTP.

The sled service (Sled) wraps one sled's store with what a coordinator
drives it by: a generation-numbered artifact config kept as a ledger on
every mirror, a delete reconciler that removes what the config does not
list, and copy-from-depot jobs that fetch artifacts from peers.

The coordinator (Coordinator, Replicator) keeps the catalog of uploaded TUF
repositories and trusted roots (Catalog, bbolt), runs each upload as a saga
whose log survives crashes, and drives every sled until each holds every
wanted artifact: collect (put config, list), plan (Plan, a pure function),
execute (PUTs from the coordinator's copies, then copies between sleds).

# Files

Sled service:

	sled.go        Sled: options, lifecycle, config, artifact reads and writes, status
	sledstore.go   Store and Peer: what the sled service needs from its store and peers
	ledger.go      the config ledger on every mirror
	configrule.go  CheckConfig: which config may replace which (catalog, generation)
	adopt.go       AdoptCatalog: the admin move of a sled to another catalog
	reconcile.go   the delete reconciler
	copy.go        copy-from-depot jobs
	protect.go     staging for uploads: protections the reconciler honours

Coordinator:

	coordinator.go Coordinator: options, catalog changes, long-poll wake-ups
	catalog.go     the bbolt catalog: repositories, trust roots, generation
	catalogid.go   the catalog's id, made once, carried by every config
	registry.go    registered sleds in the catalog
	saga.go        the upload saga log in the catalog
	audit.go       the hash-chained audit log in the catalog (package auditchain)
	tokens.go      operator tokens in the catalog, roles, the tokens file format
	tokenfile.go   the --tokens-file token set, re-read when it changes
	upload.go      an upload, step by step
	recover.go     saga recovery: undo or carry on what a crash left
	sleds.go       SledClient, and LocalSled for the coordinator's own sled
	replicator.go  Replicator: options, the activation loop, one activation
	collect.go     activation step 1: read every sled's config, then put ours and list
	plan.go        activation step 2: the planner (pure)
	execute.go     activation step 3: PUTs, then copies
	replstatus.go  counters, the ring of recent requests, replication status
	progress.go    a repository's replication state
	errors.go      the package's sentinel errors

# Guarantees

A sled serves one catalog: every config carries its catalog's id, and a
sled that has a config takes a new one only from the same catalog
(CheckConfig; moving a sled is AdoptCatalog, an admin act). Within a
catalog generations only move forward: a sled refuses a config older than
its own, and refuses writes at any generation but its current one, so
neither a stale coordinator nor a second one started by mistake can delete
what the current config wants. Collect reads every sled's config before
writing any, and writes to none when one serves another catalog or is
ahead. Progress counts only what the last collect listed and the requests
that succeeded since. A write admitted
just before a config that drops its artifact may still land; the
reconciler is triggered after it and removes it. The reconciler re-reads
the config just before each unlink. An upload that fails or crashes before
it is recorded is undone (its spool removed, what it staged that nothing
else wants deleted): at once, or by saga recovery at the next start-up or
replication activation when that undo fails or the daemon crashed. An
upload recorded is replicated.

# Basics

	sled, _ := depot.NewSled(ctx, depot.SledOptions{Store: st, Peer: client})
	err := sled.SetConfig(ctx, depot.Config{Generation: 3, Artifacts: hashes})
	_, err = sled.Put(ctx, d, &gen, body, size)

# Caveats

Sleds and peers are reached through the SledClient and Peer interfaces,
which server/client implements.
*/
package depot
