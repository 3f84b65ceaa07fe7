package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"depot/depot"
	"depot/depot/etcdlocal"
	"depot/server/api"
	"depot/server/client"
)

// Tests of several coordinators on one etcd catalog (issue 14): a real
// 3-member etcd cluster embedded in the test binary, real depotd
// processes. Their names start with TestHA_ (go test -run HA).

var haDuration = flag.Duration("ha.duration", 12*time.Second, "how long TestHA_TwoCoordinatorsSoak runs its concurrent workload (the issue asks for 60s)")

// haTTL is the coordinators' --coordinator-ttl in these tests: short, so
// a takeover is quick, but not so short that a loaded machine misses a
// lease renewal.
const haTTL = 3 * time.Second

// One etcd cluster for the package, started by the first test that needs
// it; each test keeps its catalog under a prefix of its own.
var ha struct {
	once sync.Once
	dir  string
	c    *etcdlocal.Cluster
	err  error
}

// haCluster returns the package's etcd cluster, starting it on first use.
func haCluster(t testing.TB) *etcdlocal.Cluster {
	t.Helper()
	ha.once.Do(func() {
		ha.dir, ha.err = os.MkdirTemp("", "depotd-etcd-")
		if ha.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ha.c, ha.err = etcdlocal.Start(ctx, ha.dir, 3, etcdlocal.Options{NoFsync: true})
	})
	if ha.err != nil {
		t.Fatalf("start etcd: %v", ha.err)
	}
	// A test that stops members restarts them; make sure of it before the
	// next one.
	t.Cleanup(func() { haRestartAll(t) })
	return ha.c
}

// haRestartAll restarts every stopped member.
func haRestartAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 3 {
		if err := ha.c.Restart(ctx, i); err != nil {
			t.Errorf("restart etcd member %d: %v", i, err)
		}
	}
}

// haStop stops the cluster, if a test started it (TestMain calls it).
func haStop() {
	if ha.c != nil {
		ha.c.Close()
	}
	if ha.dir != "" {
		os.RemoveAll(ha.dir)
	}
}

// haRuns numbers the tests' runs, so -count=N runs each under a fresh
// prefix of the one cluster.
var haRuns atomic.Int64

// haPrefix is a test's own key prefix in etcd.
func haPrefix(t testing.TB) string {
	return fmt.Sprintf("/%s-%d/", strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), haRuns.Add(1))
}

// haCatalog opens the test's catalog in the test process, to inspect
// what the coordinators wrote.
func haCatalog(t testing.TB, c *etcdlocal.Cluster, prefix string) *depot.Catalog {
	t.Helper()
	cat, err := depot.OpenEtcdCatalog(t.Context(), depot.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

// haNode is a coordinator on the shared catalog, with its own sled, and
// what it takes to restart it on the same addresses (the registry names
// them).
type haNode struct {
	*daemon
	id   string // its sled's id in the registry (--sled-id)
	dir  string
	args []string
}

// startHA starts a coordinator with sled id id on the test's
// catalog; env is extra environment (fault injection).
func startHA(t testing.TB, c *etcdlocal.Cluster, prefix, id, root string, env []string, extra ...string) *haNode {
	t.Helper()
	n := &haNode{id: id, dir: t.TempDir()}
	n.args = append([]string{
		"--catalog", c.CatalogURL(), "--etcd-prefix", prefix, "--coordinator-ttl", haTTL.String(),
		"--sled-id", id, "--replication-period", "1h",
	}, extra...)
	if root != "" {
		n.args = append(n.args, "--trusted-root", root)
	}
	n.daemon = startDaemonEnv(t, n.dir, env, n.args...)
	return n
}

// restart starts the node's daemon again on its data and addresses (the
// last one must have exited).
func (n *haNode) restart(t testing.TB, env []string) {
	t.Helper()
	addr := func(u string) string { return strings.TrimPrefix(u, "http://") }
	n.daemon = startDaemonEnv(t, n.dir, env, append(n.args,
		"--listen", addr(n.sledURL), "--depot-listen", addr(n.depotURL), "--operator-listen", addr(n.opURL))...)
}

// register puts every sled in the shared registry through op.
func register(t testing.TB, op *client.Client, sleds map[string]*daemon) {
	t.Helper()
	for id, s := range sleds {
		if _, err := op.PutSled(context.Background(), api.SledRecord{ID: id, ControlURL: s.sledURL, DepotURL: s.depotURL}); err != nil {
			t.Fatalf("register sled %s: %v", id, err)
		}
	}
}

// leaderOf waits until exactly one of the coordinators says it leads
// replication and returns it.
func leaderOf(t testing.TB, within time.Duration, nodes ...*haNode) *haNode {
	t.Helper()
	var leader *haNode
	waitUntil(t, within, "one coordinator leads", func() bool {
		leader = nil
		for _, n := range nodes {
			st, err := n.op.ReplicationStatus(context.Background(), 0)
			if err != nil {
				return false
			}
			if st.Leading {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

// apiCode is the error code of an API error, "" for nil or another error.
func apiCode(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// holdsOnly describes how the daemon's mirrors differ from want: what
// they hold outside it and, if all, what of it they lack ("" if nothing).
func holdsOnly(t testing.TB, d *daemon, want map[api.Digest]bool, all bool) string {
	t.Helper()
	have := map[api.Digest]bool{}
	var extra, missing int
	for _, dg := range storedOnDisk(t, d) {
		have[dg] = true
		if !want[dg] {
			extra++
		}
	}
	if all {
		for dg := range want {
			if !have[dg] {
				missing++
			}
		}
	}
	if extra+missing == 0 {
		return ""
	}
	return fmt.Sprintf("%d artifacts no recorded repository wants, %d wanted ones missing", extra, missing)
}

// waitHolds waits (bounded) until the daemon holds nothing outside want
// (and, if all, everything in it): its reconciler and replication get
// there in their own time.
func waitHolds(t testing.TB, name string, d *daemon, want map[api.Digest]bool, all bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		diff := holdsOnly(t, d, want, all)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %v: %s", name, within, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantedSet is the catalog's wanted set now.
func wantedSet(t testing.TB, cat *depot.Catalog) (uint64, map[api.Digest]bool) {
	t.Helper()
	w, err := cat.Wanted(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[api.Digest]bool{}
	for dg := range w.Artifacts {
		out[api.Digest(dg)] = true
	}
	return w.Generation, out
}

func haRepoName(version string) string { return fmt.Sprintf("repo-%s.zip", version) }

// waitComplete waits (bounded) until the repository is complete as the
// leading coordinator reports it: only the leader collects the sleds'
// holdings, so a follower's progress does not move.
func waitComplete(t testing.TB, version string, within time.Duration, nodes ...*haNode) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	var leader *haNode
	for leader == nil {
		for _, n := range nodes {
			st, err := n.op.ReplicationStatus(ctx, 0)
			if err != nil || !st.Leading {
				continue
			}
			if p, err := n.op.Repo(ctx, version, 0); err == nil && p.State == api.RepoComplete {
				leader = n
				break
			}
		}
		if leader != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("repository %s not complete on the leader within %v", version, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every follower that runs reports the same, from its own look at the
	// sleds.
	for _, n := range nodes {
		if n == leader {
			continue
		}
		if _, err := n.op.ReplicationStatus(ctx, 0); err != nil {
			continue // stopped
		}
		for {
			p, err := n.op.Repo(ctx, version, 0)
			if err == nil && p.State == api.RepoComplete {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("repository %s complete on the leader but not on a follower within %v: %+v, %v", version, within, p.State, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// checkIdle checks that the leader of a converged rack stays idle: the
// follower's requests for an activation must not echo back as new
// requests. An activation or two may still come from the last change.
func checkIdle(t testing.TB, leader *haNode) {
	t.Helper()
	ctx := context.Background()
	var st api.ReplicationStatus
	waitUntil(t, 30*time.Second, "the leader between activations", func() bool {
		var err error
		st, err = leader.op.ReplicationStatus(ctx, 0)
		return err == nil && !st.Running
	})
	time.Sleep(2 * time.Second)
	now, err := leader.op.ReplicationStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := now.Activations - st.Activations; n > 2 {
		t.Fatalf("the leader of an idle rack ran %d activations in 2s", n)
	}
}
