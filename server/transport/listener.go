package transport

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// LimitListener returns a listener that holds at most max connections
// open at once. A connection accepted over the cap is closed at once
// (the client sees a reset rather than a hang in the kernel's backlog) and
// counted in Refused. max <= 0 means no cap.
func LimitListener(ln net.Listener, max int) *Limited {
	return &Limited{Listener: ln, max: int64(max)}
}

// Limited is a listener with a connection cap; see LimitListener. Safe
// for concurrent use.
type Limited struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Int64
}

// Accept returns the next connection under the cap.
func (l *Limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max > 0 && l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			c.Close()
			continue
		}
		if l.max <= 0 {
			l.open.Add(1)
		}
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// Open returns the number of connections open now.
func (l *Limited) Open() int64 { return l.open.Load() }

// Refused returns the number of connections closed at once for being over
// the cap, since the listener was made.
func (l *Limited) Refused() int64 { return l.refused.Load() }

type limitedConn struct {
	net.Conn
	l    *Limited
	once sync.Once
}

// ReadFrom keeps sendfile: net/http uses it when the connection is an
// io.ReaderFrom, and embedding the net.Conn interface would hide it.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// IsLoopback reports whether a bound listener address is a loopback one
// (127.0.0.0/8, ::1). A wildcard address (0.0.0.0, ::) is not.
func IsLoopback(addr net.Addr) bool {
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
