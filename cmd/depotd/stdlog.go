package main

import (
	stdlog "log"
	"log/slog"
	"strings"
)

// routeStdLog sends what the standard library logs (net/http's transport
// and servers) through log, with one exception: net/http reports bytes a
// peer sent unasked ("Unsolicited response received on idle HTTP channel
// starting with ...") by quoting them, and nothing a peer sends may reach
// a log line, so that line is replaced by a fixed one.
func routeStdLog(log *slog.Logger) {
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdLogWriter{log})
}

type stdLogWriter struct{ log *slog.Logger }

func (w stdLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	if strings.Contains(line, "Unsolicited response") {
		w.log.Warn("net/http: a peer sent bytes it was not asked for; the connection was dropped (the bytes are not logged)")
		return len(p), nil
	}
	w.log.Warn("net/http", "line", line)
	return len(p), nil
}
