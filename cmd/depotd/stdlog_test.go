package main

import (
	"bytes"
	stdlog "log"
	"log/slog"
	"strings"
	"testing"
)

// net/http quotes what a peer sent unasked; that line must not reach the
// log, while other standard-library lines do.
func TestStdLog_PeerBytesNeverLogged(t *testing.T) {
	var buf bytes.Buffer
	l := stdlog.New(stdLogWriter{slog.New(slog.NewTextHandler(&buf, nil))}, "", 0)
	l.Printf("Unsolicited response received on idle HTTP channel starting with %q; err=%v", "TOP-SECRET-7f3a", nil)
	l.Printf("http: TLS handshake error from 127.0.0.1:1: EOF")
	out := buf.String()
	if strings.Contains(out, "TOP-SECRET") || !strings.Contains(out, "the bytes are not logged") {
		t.Fatalf("peer bytes reached the log:\n%s", out)
	}
	if !strings.Contains(out, "TLS handshake error") {
		t.Fatalf("other lines dropped:\n%s", out)
	}
}
