package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"depot/server/api"
	"depot/server/client"
)

func TestSourcePolicy_CheckSource(t *testing.T) {
	def, err := client.NewSourcePolicy(nil, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	rack, err := client.NewSourcePolicy([]string{"10.0.0.0/24", "192.168.1.7", "peer.rack.example:12348"}, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    *client.SourcePolicy
		url  string
		want bool
	}{
		{def, "http://127.0.0.1:12348", true},
		{def, "http://127.9.9.9:12348", true},
		{def, "http://[::1]:12348", true},
		{def, "http://localhost:12348", true},
		{def, "http://10.0.0.5:12348", false},
		{def, "https://10.0.0.5:12348", false}, // no rack CA: not a rack member
		{def, "http://[::ffff:10.0.0.5]:12348", false},
		{rack, "http://10.0.0.200:12348", true},
		{rack, "http://10.0.1.1:12348", false},
		{rack, "http://192.168.1.7:1", true},
		{rack, "http://192.168.1.8:1", false},
		{rack, "http://127.0.0.1:12348", false}, // an allowlist replaces the loopback default
		{rack, "http://peer.rack.example:12348", true},
		{rack, "https://10.9.9.9:12348", true}, // verified against the rack CA when it connects
	} {
		err := c.p.CheckSource(c.url)
		if (err == nil) != c.want {
			t.Errorf("CheckSource(%s) = %v, want allowed=%v", c.url, err, c.want)
		}
		if err != nil && !errors.Is(err, client.ErrSourceNotAllowed) {
			t.Errorf("CheckSource(%s) = %v, not ErrSourceNotAllowed", c.url, err)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "nonsense", ":12"} {
		if _, err := client.NewSourcePolicy([]string{bad}, false, 0); err == nil {
			t.Errorf("NewSourcePolicy(%q) accepted", bad)
		}
	}
}

// TestSourcePolicy_DialChecksTheAddress: the check is made on the address
// actually connected to, so a name cannot smuggle a refused address past
// it.
func TestSourcePolicy_DialChecksTheAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx := context.Background()
	only10, _ := client.NewSourcePolicy([]string{"10.0.0.0/8"}, false, 0)
	if _, err := client.PolicyDial(ctx, only10, "localhost:"+port); !errors.Is(err, client.ErrSourceNotAllowed) {
		t.Fatalf("dial of a refused address: %v", err)
	}
	named, _ := client.NewSourcePolicy([]string{"10.0.0.0/8", "localhost:" + port}, false, 0)
	c, err := client.PolicyDial(ctx, named, "localhost:"+port)
	if err != nil {
		t.Fatalf("dial of a listed host:port: %v", err)
	}
	c.Close()
}

// TestPeer_ErrorsCarryNothingFromTheSource: a source's error body and a
// made-up error code come back as the status alone.
func TestPeer_ErrorsCarryNothingFromTheSource(t *testing.T) {
	const secret = "s3cr3t-body"
	mux := http.NewServeMux()
	mux.HandleFunc("/artifact/sha256/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Error-Code", secret)
		w.WriteHeader(500)
		w.Write([]byte(`{"error_code":"` + secret + `","message":"` + secret + `"}`))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	p, _ := client.NewSourcePolicy(nil, false, 1<<20)
	peer := client.NewFetcher(p, nil)
	_, _, err = peer.Fetch(context.Background(), "http://"+ln.Addr().String(), api.Digest{})
	var se *client.SourceError
	if !errors.As(err, &se) || se.Status != 500 || se.Code != "" || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
	_, err = peer.Head(context.Background(), "http://"+ln.Addr().String(), api.Digest{})
	if !errors.As(err, &se) || strings.Contains(err.Error(), secret) {
		t.Fatalf("HEAD err = %v", err)
	}
}
