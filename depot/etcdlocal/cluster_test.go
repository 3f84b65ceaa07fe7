package etcdlocal

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A member stopped and restarted keeps the cluster serving; two of three
// stopped lose quorum.
func TestCluster_QuorumFollowsMembers(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, t.TempDir(), 3, Options{NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	put := func() error {
		ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 3*time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "k", "v")
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("put with 3 members: %v", err)
	}
	c.Stop(0)
	if err := put(); err != nil {
		t.Fatalf("put with 2 of 3 members: %v", err)
	}
	c.Stop(1)
	if err := put(); err == nil {
		t.Fatal("put with 1 of 3 members succeeded")
	}
	if err := c.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for put() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no quorum 20s after a member returned")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A cluster on fixed ports restarts from its data folder and keeps its
// keys; on free ports, existing data is refused.
func TestCluster_RestartOnBasePort(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := freeRun(t, 6)
	start := func() (*Cluster, error) { return Start(ctx, dir, 3, Options{NoFsync: true, BasePort: base}) }
	c, err := start()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k", "kept"); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	c.Close()
	if _, err := Start(ctx, dir, 3, Options{NoFsync: true}); err == nil {
		t.Fatal("a folder with member data started on free ports")
	}
	c, err = start()
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer c.Close()
	cli, err = clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}

// freeRun finds n consecutive ports that are free now (each one bound and
// released), starting at a port the kernel hands out.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		held := []net.Listener{l}
		ok := base+n-1 <= 65535
		for p := base + 1; ok && p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// A member that cannot listen fails the start at once, and the members
// that started are stopped (not left waiting for a quorum).
func TestCluster_PortTakenFailsStart(t *testing.T) {
	base := freeRun(t, 6)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+2)) // member 1's client port
	if err != nil {
		t.Skipf("port %d was taken meanwhile: %v", base+2, err)
	}
	defer l.Close()
	began := time.Now()
	c, err := Start(context.Background(), t.TempDir(), 3, Options{NoFsync: true, BasePort: base})
	if err == nil {
		c.Close()
		t.Fatal("a cluster started with a member's port taken")
	}
	t.Logf("refused after %v: %v", time.Since(began).Round(time.Millisecond), err)
}
