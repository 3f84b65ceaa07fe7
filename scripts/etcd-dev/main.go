// Command etcd-dev runs a real etcd cluster on loopback for development
// and the HA dev rack: N members embedded in this one process
// (go.etcd.io/etcd/server/v3/embed), data under --data. It prints the
// --catalog value for depotd and runs until SIGINT/SIGTERM. A rack runs
// etcd as its own service (Debian's etcd-server package) instead.
//
//	go run ./scripts/etcd-dev --data ./etcd-data --members 3 [--base-port 2379]
//
// With --base-port, member i listens on base+2i (clients) and base+2i+1
// (peers), and a cluster stopped with Ctrl-C restarts from the same --data
// on the same ports. Without it the ports are free ones and --data must
// hold no member data.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"depot/depot/etcdlocal"
)

func main() {
	data := flag.String("data", "./etcd-data", "data `folder` (one sub-folder a member)")
	members := flag.Int("members", 3, "number of members")
	basePort := flag.Int("base-port", 0, "fixed `port` of member 0's clients (member i: base+2i clients, base+2i+1 peers); needed to restart a cluster from its --data (0: free ports)")
	url := flag.String("url-file", "", "also write the --catalog value to this `file` once the cluster is up")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*data, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "etcd-dev:", err)
		os.Exit(1)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	c, err := etcdlocal.Start(sctx, *data, *members, etcdlocal.Options{BasePort: *basePort})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-dev:", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Println(c.CatalogURL())
	if *url != "" {
		if err := os.WriteFile(*url, []byte(c.CatalogURL()+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "etcd-dev:", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "etcd-dev: %d members up (logs in %s/m*.log); Ctrl-C stops them\n", *members, *data)
	<-ctx.Done()
}
