package auditchain_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"depot/depot/auditchain"
)

// chain builds n records in wire form the way the catalog does.
func chain(n int) [][]byte {
	var prev auditchain.Hash
	var out [][]byte
	for i := 1; i <= n; i++ {
		body := []byte(fmt.Sprintf(`{"seq":%d,"time":"t","actor":"a","source":"s","request_id":"r","action":"x","target":"","outcome":{"status":200,"error_code":""},"prev":"%s"}`, i, prev))
		h := auditchain.Sum(prev, body)
		out = append(out, auditchain.Line(body, h))
		prev = h
	}
	return out
}

func TestSplit_UndoesLine(t *testing.T) {
	body := []byte(`{"seq":1,"prev":"x"}`)
	h := auditchain.Sum(auditchain.Hash{}, body)
	got, gh, err := auditchain.Split(auditchain.Line(body, h))
	if err != nil || !bytes.Equal(got, body) || gh != h {
		t.Fatalf("Split = %s, %s, %v", got, gh, err)
	}
	for _, bad := range []string{"", "{}", `{"seq":1}`, `{"seq":1,"hash":"zz"}`} {
		if _, _, err := auditchain.Split([]byte(bad)); !errors.Is(err, auditchain.ErrMalformed) {
			t.Errorf("Split(%q) = %v", bad, err)
		}
	}
}

func TestVerifier_Next(t *testing.T) {
	good := chain(5)
	var v auditchain.Verifier
	for _, l := range good {
		if err := v.Next(l); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := v.Head(); n != 5 {
		t.Fatalf("head %d", n)
	}
	cases := map[string]func([][]byte) [][]byte{
		"changed": func(c [][]byte) [][]byte {
			c[2] = bytes.Replace(c[2], []byte(`"actor":"a"`), []byte(`"actor":"b"`), 1)
			return c
		},
		"removed": func(c [][]byte) [][]byte { return append(c[:2], c[3:]...) },
		"swapped": func(c [][]byte) [][]byte { c[2], c[3] = c[3], c[2]; return c },
		"rehashed": func(c [][]byte) [][]byte {
			body, _, _ := auditchain.Split(c[2])
			c[2] = auditchain.Line(body, auditchain.Sum(auditchain.Hash{1}, body))
			return c
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			var v auditchain.Verifier
			var mm *auditchain.Mismatch
			for _, l := range mutate(chain(5)) {
				if err := v.Next(l); err != nil {
					if !errors.As(err, &mm) {
						t.Fatal(err)
					}
					break
				}
			}
			if mm == nil || mm.Seq != 3 {
				t.Fatalf("mismatch = %v, want record 3", mm)
			}
		})
	}
}

func TestParseCheckpoint(t *testing.T) {
	cp := auditchain.Checkpoint{Seq: 7, Hash: auditchain.Hash{9}}
	got, err := auditchain.ParseCheckpoint(cp.String())
	if err != nil || got != cp {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	for _, bad := range []string{"", "7", ":ab", "0:" + cp.Hash.String(), "x:" + cp.Hash.String()} {
		if _, err := auditchain.ParseCheckpoint(bad); err == nil {
			t.Errorf("ParseCheckpoint(%q) accepted", bad)
		}
	}
}
