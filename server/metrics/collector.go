package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"depot/depot"
)

// sourceCollector turns Sources into const metrics on every scrape. It
// holds no state of its own, so it is safe for concurrent use as long as
// the sources are.
type sourceCollector struct {
	src Sources

	mirrorHealthy, mirrorArtifacts, mirrorBytes, mirrorFree *prometheus.Desc

	scrubRunning, scrubChecked, scrubArtifacts, scrubBytes *prometheus.Desc
	scrubPasses, scrubCorrupt, scrubRepaired, scrubFailed  *prometheus.Desc

	configGeneration, configArtifacts *prometheus.Desc
	copiesRunning, copiesLimit        *prometheus.Desc
	copiesQueued, copiesQueueLimit    *prometheus.Desc
	copiesTotal                       *prometheus.Desc
	recRunning, recPasses             *prometheus.Desc
	recDeleted, recFailed             *prometheus.Desc

	replGeneration, replRunning, replActivations, replRequests *prometheus.Desc
	replLastDuration, replLastFinished                         *prometheus.Desc
	replSledInventory                                          *prometheus.Desc
	repositories                                               *prometheus.Desc
}

var _ prometheus.Collector = (*sourceCollector)(nil)

func newSourceCollector(src Sources) *sourceCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &sourceCollector{
		src: src,

		mirrorHealthy:   d("mirror_healthy", "1 if the mirror is healthy, 0 if it is degraded.", "mirror"),
		mirrorArtifacts: d("mirror_artifacts", "Artifacts indexed on the mirror.", "mirror"),
		mirrorBytes:     d("mirror_bytes", "Bytes of artifacts on the mirror.", "mirror"),
		mirrorFree:      d("mirror_free_bytes", "Free bytes on the mirror's file system.", "mirror"),

		scrubRunning:   d("scrub_running", "1 while a scrub pass runs."),
		scrubChecked:   d("scrub_checked", "Artifacts looked at by the current (or last) scrub pass."),
		scrubArtifacts: d("scrub_artifacts", "Artifacts the current (or last) scrub pass looks at."),
		scrubBytes:     d("scrub_bytes", "Bytes re-hashed or copied by the current (or last) scrub pass."),
		scrubPasses:    d("scrub_passes_total", "Scrub passes finished since start-up."),
		scrubCorrupt:   d("scrub_corrupt_total", "Copies found corrupt (and removed) by finished scrub passes."),
		scrubRepaired:  d("scrub_repaired_total", "Copies repaired from a good mirror by finished scrub passes."),
		scrubFailed:    d("scrub_failed_total", "Repairs that failed, or artifacts left without a good copy, in finished scrub passes."),

		configGeneration: d("config_generation", "Generation of the sled's artifact config; absent while the sled is unmanaged."),
		configArtifacts:  d("config_artifacts", "Artifacts in the sled's config; absent while the sled is unmanaged."),
		copiesRunning:    d("copies_running", "Copy-from-depot jobs running."),
		copiesLimit:      d("copies_limit", "Copy-from-depot jobs allowed at once."),
		copiesQueued:     d("copies_queued", "Accepted copy-from-depot jobs waiting for a running slot."),
		copiesQueueLimit: d("copies_queue_limit", "Copy-from-depot jobs allowed to wait; one more is refused with TOO_MANY_COPIES."),
		copiesTotal:      d("copies_total", "Copy-from-depot jobs since start-up by outcome (rejected: refused with TOO_MANY_COPIES).", "state"),
		recRunning:       d("reconciler_running", "1 while a delete reconciler pass runs."),
		recPasses:        d("reconciler_passes_total", "Delete reconciler passes since start-up."),
		recDeleted:       d("reconciler_deleted_total", "Artifacts outside the config deleted by the reconciler since start-up."),
		recFailed:        d("reconciler_failed_total", "Reconciler deletions that failed since start-up."),

		replGeneration:   d("replication_generation", "Catalog generation the coordinator replicates."),
		replRunning:      d("replication_running", "1 while a replication activation runs."),
		replActivations:  d("replication_activations_total", "Replication activations since start-up."),
		replRequests:     d("replication_requests_total", "Requests the coordinator sent to sleds since start-up, by operation and result.", "op", "result"),
		replLastDuration: d("replication_last_activation_duration_seconds", "Duration of the last finished replication activation."),
		replLastFinished: d("replication_last_activation_timestamp_seconds", "Unix time the last replication activation finished."),
		replSledInventory: d("replication_sled_last_inventory_timestamp_seconds",
			"Unix time the coordinator last read a sled's inventory (0: never since start-up).", "sled"),
		repositories: d("repositories", "Repositories in the catalog by replication state.", "state"),
	}
}

// Describe sends every descriptor the collector can emit, whichever
// sources are set.
func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.mirrorHealthy, c.mirrorArtifacts, c.mirrorBytes, c.mirrorFree,
		c.scrubRunning, c.scrubChecked, c.scrubArtifacts, c.scrubBytes,
		c.scrubPasses, c.scrubCorrupt, c.scrubRepaired, c.scrubFailed,
		c.configGeneration, c.configArtifacts, c.copiesRunning, c.copiesLimit, c.copiesQueued, c.copiesQueueLimit, c.copiesTotal,
		c.recRunning, c.recPasses, c.recDeleted, c.recFailed,
		c.replGeneration, c.replRunning, c.replActivations, c.replRequests,
		c.replLastDuration, c.replLastFinished, c.replSledInventory, c.repositories,
	} {
		ch <- d
	}
}

// Collect reads each non-nil source once.
func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Mirrors != nil {
		c.collectMirrors(ch)
	}
	if c.src.Scrub != nil {
		c.collectScrub(ch)
	}
	if c.src.Sled != nil {
		c.collectSled(ch)
	}
	if c.src.Replication != nil {
		c.collectReplication(ch)
	}
	if c.src.RepoStates != nil {
		c.collectRepoStates(ch)
	}
}

func (c *sourceCollector) collectMirrors(ch chan<- prometheus.Metric) {
	for _, m := range c.src.Mirrors() {
		gauge(ch, c.mirrorHealthy, b2f(m.Healthy), m.Path)
		gauge(ch, c.mirrorArtifacts, float64(m.Artifacts), m.Path)
		gauge(ch, c.mirrorBytes, float64(m.Bytes), m.Path)
		gauge(ch, c.mirrorFree, float64(m.Free), m.Path)
	}
}

func (c *sourceCollector) collectScrub(ch chan<- prometheus.Metric) {
	s := c.src.Scrub()
	gauge(ch, c.scrubRunning, b2f(s.Running))
	gauge(ch, c.scrubChecked, float64(s.Checked))
	gauge(ch, c.scrubArtifacts, float64(s.Artifacts))
	gauge(ch, c.scrubBytes, float64(s.Bytes))
	counter(ch, c.scrubPasses, float64(s.Passes))
	counter(ch, c.scrubCorrupt, float64(s.TotalCorrupt))
	counter(ch, c.scrubRepaired, float64(s.TotalRepaired))
	counter(ch, c.scrubFailed, float64(s.TotalFailed))
}

func (c *sourceCollector) collectSled(ch chan<- prometheus.Metric) {
	s := c.src.Sled()
	if s.Generation != nil {
		gauge(ch, c.configGeneration, float64(*s.Generation))
	}
	if s.Artifacts != nil {
		gauge(ch, c.configArtifacts, float64(*s.Artifacts))
	}
	gauge(ch, c.copiesRunning, float64(s.Copies.Running))
	gauge(ch, c.copiesLimit, float64(s.Copies.Limit))
	gauge(ch, c.copiesQueued, float64(s.Copies.Queued))
	gauge(ch, c.copiesQueueLimit, float64(s.Copies.QueueLimit))
	counter(ch, c.copiesTotal, float64(s.Copies.Succeeded), "succeeded")
	counter(ch, c.copiesTotal, float64(s.Copies.Failed), "failed")
	counter(ch, c.copiesTotal, float64(s.Copies.Rejected), "rejected")
	r := s.Reconciler
	gauge(ch, c.recRunning, b2f(r.Running))
	counter(ch, c.recPasses, float64(r.Passes))
	counter(ch, c.recDeleted, float64(r.TotalDeleted))
	counter(ch, c.recFailed, float64(r.TotalFailed))
}

func (c *sourceCollector) collectReplication(ch chan<- prometheus.Metric) {
	r := c.src.Replication()
	gauge(ch, c.replGeneration, float64(r.Generation))
	gauge(ch, c.replRunning, b2f(r.Running))
	counter(ch, c.replActivations, float64(r.Activations))
	for op, n := range r.Lifetime {
		if n == nil {
			continue
		}
		counter(ch, c.replRequests, float64(n.OK), op, "ok")
		counter(ch, c.replRequests, float64(n.Err), op, "err")
	}
	if a := r.Last; a != nil && !a.Finished.IsZero() {
		gauge(ch, c.replLastDuration, a.Finished.Sub(a.Started).Seconds())
		gauge(ch, c.replLastFinished, float64(a.Finished.UnixNano())/1e9)
	}
	for _, sl := range r.Sleds {
		var at float64
		if !sl.LastInventory.IsZero() {
			at = float64(sl.LastInventory.UnixNano()) / 1e9
		}
		gauge(ch, c.replSledInventory, at, sl.ID)
	}
}

// repoStates are always reported, at 0 when no repository is in them, so
// that sum() and ratios need no "or vector(0)".
var repoStates = []string{depot.RepoReplicating, depot.RepoDurable, depot.RepoComplete}

func (c *sourceCollector) collectRepoStates(ch chan<- prometheus.Metric) {
	states := c.src.RepoStates()
	for _, s := range repoStates {
		gauge(ch, c.repositories, float64(states[s]), s)
	}
	for s, n := range states {
		switch s {
		case depot.RepoReplicating, depot.RepoDurable, depot.RepoComplete:
		default: // a state added later
			gauge(ch, c.repositories, float64(n), s)
		}
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	emit(ch, d, prometheus.GaugeValue, v, labels)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	emit(ch, d, prometheus.CounterValue, v, labels)
}

// emit sends one const metric. A label value that is not valid UTF-8 (a
// strange mirror path) fails that metric in the scrape instead of
// panicking, as MustNewConstMetric would.
func emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
