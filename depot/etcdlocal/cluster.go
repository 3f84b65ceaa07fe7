// Package etcdlocal runs a real etcd cluster on loopback, its members
// embedded in this process (go.etcd.io/etcd/server/v3/embed). Tests, the
// catalog benchmark and scripts/dev-rack --ha use it; a rack runs etcd as
// its own service.
package etcdlocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Cluster is a set of etcd members on 127.0.0.1, each with its own data
// folder under Dir.
type Cluster struct {
	Dir string

	mu      sync.Mutex
	cfgs    []*embed.Config
	members []*embed.Etcd // nil while a member is stopped
}

// Options tune a cluster. The zero value is a durable cluster with etcd's
// own timing.
type Options struct {
	// NoFsync turns off etcd's fsyncs: for benchmarks and tests that do not
	// survive a machine crash anyway.
	NoFsync bool
	// LogLevel is etcd's (debug, info, warn, error); default "error".
	LogLevel string
	// BasePort fixes the ports: member i listens for clients on
	// BasePort+2i and for peers on BasePort+2i+1. A cluster whose members
	// already have data under the folder restarts from it, which needs the
	// ports it ran on. 0: free ports, and the folder must hold no member
	// data.
	BasePort int
}

// Start starts n members under dir and waits until they have a leader.
func Start(ctx context.Context, dir string, n int, opts Options) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("etcdlocal: need at least one member")
	}
	var ports []int
	if opts.BasePort > 0 {
		if opts.BasePort+2*n-1 > 65535 {
			return nil, fmt.Errorf("etcdlocal: base port %d leaves no room for %d members", opts.BasePort, n)
		}
		for i := range 2 * n {
			ports = append(ports, opts.BasePort+i)
		}
	} else {
		for i := range n {
			if hasData(filepath.Join(dir, fmt.Sprintf("m%d", i))) {
				return nil, fmt.Errorf("etcdlocal: %s holds member data: restart it on the ports it ran on (BasePort; scripts/etcd-dev --base-port)", dir)
			}
		}
		var err error
		if ports, err = freePorts(2 * n); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Dir: dir}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		client := mustURL(fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]))
		peer := mustURL(fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]))
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "etcdlocal"
		cfg.ClusterState = embed.ClusterStateFlagNew
		if hasData(cfg.Dir) {
			cfg.ClusterState = embed.ClusterStateFlagExisting
		}
		cfg.UnsafeNoFsync = opts.NoFsync
		cfg.LogLevel = opts.LogLevel
		if cfg.LogLevel == "" {
			cfg.LogLevel = "error"
		}
		// Members log to a file beside their data: shutdowns log errors.
		cfg.LogOutputs = []string{filepath.Join(dir, cfg.Name+".log")}
		// Short ticks: a stopped leader is replaced within about a second.
		cfg.TickMs, cfg.ElectionMs = 50, 500
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("etcdlocal: %w", err)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	c.members = make([]*embed.Etcd, n)
	// Members of a new cluster wait for each other, so start them together.
	errs := make([]error, n)
	var wg sync.WaitGroup
	// One member that cannot start (a port taken) leaves the others
	// without quorum: stop waiting for them at once.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range n {
		wg.Go(func() {
			if errs[i] = c.start(sctx, i); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Endpoints lists the members' client URLs, stopped members included.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		out[i] = cfg.AdvertiseClientUrls[0].String()
	}
	return out
}

// CatalogURL is the --catalog value naming every member.
func (c *Cluster) CatalogURL() string {
	hosts := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		hosts[i] = cfg.AdvertiseClientUrls[0].Host
	}
	return "etcd://" + strings.Join(hosts, ",")
}

// Leader is the index of the running member that leads the cluster now,
// or -1 while none does.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.members {
		if e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Stop stops member i (its data stays for Restart).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	e := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts a stopped member i again from its data folder.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.mu.Lock()
	running := c.members[i] != nil
	c.mu.Unlock()
	if running {
		return nil
	}
	c.cfgs[i].ClusterState = embed.ClusterStateFlagExisting
	return c.start(ctx, i)
}

func (c *Cluster) start(ctx context.Context, i int) error {
	e, err := embed.StartEtcd(c.cfgs[i])
	if err != nil {
		return fmt.Errorf("etcdlocal: start member %d: %w", i, err)
	}
	// Close waits for the client servers, which start only once the member
	// is ready or stopping: stop a member that never got ready first.
	abandon := func() {
		e.Server.HardStop()
		e.Close()
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		abandon()
		return fmt.Errorf("etcdlocal: member %d: %w", i, err)
	case <-ctx.Done():
		abandon()
		return fmt.Errorf("etcdlocal: member %d not ready: %w", i, ctx.Err())
	case <-time.After(60 * time.Second):
		abandon()
		return fmt.Errorf("etcdlocal: member %d not ready after 60s", i)
	}
	c.mu.Lock()
	c.members[i] = e
	c.mu.Unlock()
	return nil
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}

// hasData reports whether a member's folder holds its data (a member
// that ran before).
func hasData(memberDir string) bool {
	_, err := os.Stat(filepath.Join(memberDir, "member"))
	return err == nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("etcdlocal: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}
