// Command depotctl is the operator's command line for depotd: it uploads
// TUF repositories, manages trust roots and sleds, reads and writes
// artifacts, and shows a daemon's status and replication, through the Go
// client in server/client. Run `depotctl --help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
