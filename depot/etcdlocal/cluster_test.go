package etcdlocal

import (
	"context"
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
