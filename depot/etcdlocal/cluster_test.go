package etcdlocal

import (
	"context"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A port the kernel just handed out; the next five are very likely free.
	base := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if base > 65000 {
		base -= 1000
	}
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
