/*
Package metrics exposes depotd's Prometheus metrics (GET /metrics, text
format) with client_golang, on a registry of its own: nothing is registered
with, or read from, prometheus.DefaultRegisterer, so several Metrics (one
per test, one per process) never collide.

# Basics

New builds a Metrics from Sources, a set of functions read at scrape time
by a custom collector; nothing has to push state into this package. Any
source may be nil: a sled without the coordinator role leaves Replication
and RepoStates nil, and their metrics are simply absent. The registry also
holds the Go runtime (go_*) and process (process_*) collectors.

Three things are pushed, because no status holds them:

  - Middleware(api) wraps an echo listener ("sled" or "depot") and records
    every request: its count by route and status, the body bytes read and
    written, and its duration.
  - ObserveError(code) counts domain errors by their error_code; the
    server's error handler calls it once per error response.
  - ObserveActivation(d) records the duration of one replication activation.

Handler serves the registry; Registry returns it for tests and for
registering more collectors.

# Naming

Every metric is named depot_<subsystem>_<name>_<unit>: counters end in
_total, sizes in _bytes, durations in _seconds (base units throughout).
Labels take values from small, fixed sets: route is echo's route template
("/artifacts/:sha256"), never the raw URL, and "unmatched" when no route
matched; method is one of the HTTP methods or "OTHER"; code is the status
code; mirror is a mirror's directory (a handful per sled).

Pushed (Middleware, ObserveError, ObserveActivation):

	depot_http_requests_total{api,route,method,code}           counter
	depot_http_request_bytes_total{api,route}                  counter   body bytes read by the handler
	depot_http_response_bytes_total{api,route}                 counter   body bytes written
	depot_http_request_duration_seconds{api,route,method}      histogram 1 ms … ~17 min
	depot_errors_total{code}                                   counter   HASH_MISMATCH starts at 0
	depot_replication_activation_duration_seconds              histogram 10 ms … ~44 min

Read at scrape time, from Sources.Mirrors:

	depot_mirror_healthy{mirror}        gauge 1 or 0
	depot_mirror_artifacts{mirror}      gauge
	depot_mirror_bytes{mirror}          gauge
	depot_mirror_free_bytes{mirror}     gauge

Sources.Scrub (the current pass, or the last one when none runs; totals since
start-up, which grow when a pass ends):

	depot_scrub_running                 gauge 1 or 0
	depot_scrub_checked                 gauge artifacts looked at in this pass
	depot_scrub_artifacts               gauge artifacts this pass looks at
	depot_scrub_bytes                   gauge bytes re-hashed or copied in this pass
	depot_scrub_passes_total            counter
	depot_scrub_corrupt_total           counter
	depot_scrub_repaired_total          counter
	depot_scrub_failed_total            counter

Sources.Sled (SledStatus.Scrub is ignored: scrub metrics come from Sources.Scrub):

	depot_config_generation             gauge, absent while the sled is unmanaged (no config)
	depot_config_artifacts              gauge, absent while the sled is unmanaged
	depot_copies_running                gauge
	depot_copies_limit                  gauge
	depot_copies_total{state}           counter, state = succeeded, failed or rejected
	depot_reconciler_running            gauge 1 or 0
	depot_reconciler_passes_total       counter
	depot_reconciler_deleted_total      counter
	depot_reconciler_failed_total       counter

Sources.Replication and Sources.RepoStates (coordinator only):

	depot_replication_generation                           gauge
	depot_replication_running                              gauge 1 or 0
	depot_replication_activations_total                    counter
	depot_replication_requests_total{op,result}            counter, op = put_config, list, put, copy; result = ok or err
	depot_replication_last_activation_duration_seconds     gauge, absent until an activation has finished
	depot_replication_last_activation_timestamp_seconds    gauge, Unix time the last activation finished
	depot_repositories{state}                              gauge, state = replicating, durable, complete (0 when none)

An unmanaged sled has no generation, so depot_config_generation is absent
rather than -1: a sentinel value would poison max() and comparisons across
sleds, while absence is what PromQL's absent() and "unless" are made for.

# Caveats

Sources are called on every scrape, from the scrape's goroutine and
possibly from several scrapes at once: they must be safe for concurrent use
and cheap (a copy of a status under a short lock), since a blocked source
blocks the scrape.

Middleware hands a handler's error to echo's error handler itself (as
echo's RequestLogger does with HandleError), so the status and size it
records are the ones the client gets; it then returns the error, and the
error handler must ignore responses already committed (echo's default and
depot's own do). Install echo's Recover middleware inside this one (Use it
after Middleware) so that a panic reaches Middleware as an error; a panic
that passes through Middleware is not counted.
*/
package metrics
