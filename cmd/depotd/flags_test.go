package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRun_CatalogFlagErrors: wrong catalog flags are usage errors (exit 2)
// with a message naming the flag, before anything is opened or bound.
func TestRun_CatalogFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--catalog", "etcd://127.0.0.1:1"}, "--sled-id"},
		{[]string{"--catalog", "etcd://127.0.0.1:1", "--sled-id", "local"}, "--sled-id"},
		{[]string{"--catalog", "etcd://127.0.0.1", "--sled-id", "a"}, "host:port"},
		{[]string{"--catalog", "etcd://127.0.0.1:1/x", "--sled-id", "a"}, "host:port"},
		{[]string{"--catalog", "etcd://127.0.0.1:1", "--sled-id", "a", "--etcd-cert", "c.pem"}, "--etcd-key"},
		{[]string{"--etcd-ca", "ca.pem"}, "--catalog etcd://"},
	} {
		var stderr bytes.Buffer
		args := append([]string{"--data", t.TempDir()}, tc.args...)
		if code := run(args, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("depotd %q: exit %d, %q; want 2 and a message naming %s", tc.args, code, stderr.String(), tc.want)
		}
	}
}
