package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
)

// TestHA_LeaderKilledDuringActivation: two coordinators and two storage
// sleds on one etcd catalog. A repository uploaded through the follower
// is copied by the leader from the follower's sled; the leader is killed
// (SIGKILL) while that activation runs. The follower leads within the
// lease's TTL (plus a margin for a loaded machine), and once the killed
// coordinator is back the repository reaches complete on every sled.
func TestHA_LeaderKilledDuringActivation(t *testing.T) {
	cl := haCluster(t)
	prefix := haPrefix(t)
	work := t.TempDir()
	repo, root, digests := testRepo(t, work, "1.0.0", 4, 6<<20)
	ctx := context.Background()

	a := startHA(t, cl, prefix, "a", root, nil)
	b := startHA(t, cl, prefix, "b", root, nil)
	s1 := startDaemon(t, t.TempDir(), "--coordinator=false")
	s2 := startDaemon(t, t.TempDir(), "--coordinator=false")
	register(t, a.op, map[string]*daemon{"a": a.daemon, "b": b.daemon, "s1": s1, "s2": s2})
	leader := leaderOf(t, 30*time.Second, a, b)
	follower := a
	if leader == a {
		follower = b
	}
	checkIdle(t, leader)
	if res := uploadFile(t, follower.op, repo); res.Status != api.UploadInserted {
		t.Fatalf("upload through the follower = %+v", res)
	}
	// The leader hears of it through the catalog and starts an activation
	// of the new generation.
	waitUntil(t, 30*time.Second, "the leader runs an activation of generation 1", func() bool {
		st, err := leader.op.ReplicationStatus(ctx, 0)
		return err == nil && st.Running && st.Generation >= 1
	})
	killed := time.Now()
	leader.kill(t)
	p, err := follower.op.Repo(ctx, "1.0.0", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s killed during an activation; the repository was %s", leader.id, p.State)

	// The follower takes over: its session's campaign wins once the dead
	// leader's lease expires.
	for {
		st, err := follower.op.ReplicationStatus(ctx, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leading {
			break
		}
		if time.Since(killed) > haTTL+5*time.Second {
			t.Fatalf("no takeover %v after the leader was killed (TTL %v)", time.Since(killed).Round(time.Millisecond), haTTL)
		}
	}
	takeover := time.Since(killed)
	t.Logf("takeover %v after SIGKILL (TTL %v)", takeover.Round(time.Millisecond), haTTL)

	// The dead coordinator's sled is in service: the repository completes
	// once it is back, as a follower now.
	leader.restart(t, nil)
	got := waitRepoState(t, follower.op, "1.0.0", api.RepoComplete, 90*time.Second)
	t.Logf("repository complete %v after the kill", time.Since(killed).Round(time.Millisecond))
	if got.InService != 4 {
		t.Fatalf("progress = %+v, want 4 sleds in service", got)
	}
	if l := leaderOf(t, 10*time.Second, a, b); l != follower {
		t.Fatalf("leader after the restart is %s, want %s", l.id, follower.id)
	}
	checkIdle(t, follower)
	want := map[api.Digest]bool{}
	for _, dg := range digests {
		want[dg] = true
	}
	for name, d := range map[string]*daemon{"a": a.daemon, "b": b.daemon, "s1": s1, "s2": s2} {
		waitHolds(t, name, d, want, true, 10*time.Second)
		checkNothingPartial(t, d)
	}
}

// TestHA_UploaderKilledAtEachSagaStep: coordinator A dies (SIGKILL) as
// an upload it accepted reaches each saga step while coordinator B runs.
// B adopts the saga once A's lease is gone (the saga log names B as its
// owner and B's saga recovery counts it): before record it is undone and
// no repository appears; from record on it carries on and the repository
// completes. When A is back its sled holds nothing outside the wanted set.
func TestHA_UploaderKilledAtEachSagaStep(t *testing.T) {
	cl := haCluster(t)
	prefix := haPrefix(t)
	cat := haCatalog(t, cl, prefix)
	ctx := context.Background()
	work := t.TempDir()

	b := startHA(t, cl, prefix, "b", "", nil)
	a := startHA(t, cl, prefix, "a", "", nil)
	register(t, b.op, map[string]*daemon{"a": a.daemon, "b": b.daemon})
	bst, err := b.op.ReplicationStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.stop(t)

	for i, c := range []struct {
		step     string
		recorded bool
	}{
		{depot.StepSpool, false},
		{depot.StepVerify, false},
		{depot.StepStage, false},
		{depot.StepRecorded, true},
	} {
		t.Run(c.step, func(t *testing.T) {
			version := fmt.Sprintf("7.%d.0", i)
			// Distinct sizes: no artifact is shared with another round.
			repo, root, digests := testRepo(t, work, version, 3, 1<<20+int64(i)*4099)
			rootDoc, err := os.ReadFile(root)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.op.AddTrustRoot(ctx, rootDoc); err != nil {
				t.Fatal(err)
			}
			before := b.recovery(t)

			a.restart(t, []string{"DEPOTD_CRASH_AT_SAGA_STEP=" + c.step})
			f, err := os.Open(repo)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			_, err = a.op.UploadRepo(ctx, haRepoName(version), "", f, fi.Size())
			f.Close()
			if err == nil {
				t.Fatal("upload succeeded; A should have died at step " + c.step)
			}
			a.wait(t, 10*time.Second)
			killed := time.Now()

			// B adopts the saga once A's lease has expired.
			var saga depot.Saga
			waitUntil(t, haTTL+15*time.Second, "B adopts and finishes the saga", func() bool {
				sagas, err := cat.Sagas(t.Context())
				if err != nil {
					return false
				}
				for _, s := range sagas {
					if s.FileName == haRepoName(version) {
						saga = s
						return s.Owner == bst.Coordinator && s.Finished()
					}
				}
				return false
			})
			t.Logf("saga %s adopted by B and %s %v after the kill", saga.ID, saga.Step, time.Since(killed).Round(time.Millisecond))
			after := b.recovery(t)
			wantStep, undone, carried := depot.StepUndone, 1, 0
			if c.recorded {
				wantStep, undone, carried = depot.StepDone, 0, 1
			}
			if saga.Step != wantStep || saga.Sled != "a" {
				t.Fatalf("saga after adoption = %+v, want step %s on sled a", saga, wantStep)
			}
			if after.TotalUndone-before.TotalUndone != undone || after.TotalCarried-before.TotalCarried != carried {
				t.Fatalf("B's saga recovery went from %+v to %+v", before, after)
			}

			// No half-recorded repository.
			repos, err := b.op.Repos(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, r := range repos {
				found = found || r.SystemVersion == version
			}
			if found != c.recorded {
				t.Fatalf("after a kill at %s: repository recorded = %v", c.step, found)
			}

			// A is back: its sled ends with nothing outside the wanted set.
			a.restart(t, nil)
			_, want := wantedSet(t, cat)
			for _, dg := range digests {
				if want[dg] != c.recorded {
					t.Fatalf("artifact %s wanted = %v after a kill at %s", dg, want[dg], c.step)
				}
			}
			waitHolds(t, "A's sled", a.daemon, want, c.recorded, 30*time.Second)
			// What B could not reach on A's sled, A removed: the saga's
			// cleanup mark is gone.
			waitUntil(t, 10*time.Second, "A clears the saga's cleanup", func() bool {
				sagas, err := cat.Sagas(t.Context())
				if err != nil {
					return false
				}
				for _, s := range sagas {
					if s.ID == saga.ID {
						return s.Cleanup == ""
					}
				}
				return false
			})
			if c.recorded {
				waitComplete(t, version, 60*time.Second, a, b)
				waitHolds(t, "B's sled", b.daemon, want, true, 10*time.Second)
			}
			checkNothingPartial(t, a.daemon)
			a.stop(t)
		})
		if t.Failed() {
			return
		}
	}
}

// recovery is the coordinator's saga recovery status.
func (n *haNode) recovery(t testing.TB) api.RecoveryStatus {
	t.Helper()
	st, err := n.op.ReplicationStatus(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return st.SagaRecovery
}
