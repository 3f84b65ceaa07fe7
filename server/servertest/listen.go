package servertest

import (
	"net"
	"testing"
)

// Listen opens a TCP listener on 127.0.0.1 at a port the kernel picks, so
// tests never listen beyond the machine and never collide on a port. The
// caller owns the listener (a server's Serve or Close releases it).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
