package client

import (
	"context"
	"net"
)

// PolicyDial dials addr in plain TCP through p's guarded dialer.
func PolicyDial(ctx context.Context, p *SourcePolicy, addr string) (net.Conn, error) {
	dial, _ := p.dialer(nil)
	return dial(ctx, "tcp", addr)
}
