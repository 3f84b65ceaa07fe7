package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	good := strings.Repeat("0a", 32)
	d, err := ParseDigest(good)
	if err != nil || d.String() != good || d[0] != 0x0a {
		t.Fatalf("ParseDigest(%q) = %v, %v", good, d, err)
	}
	if u, err := ParseDigest(strings.ToUpper(good)); err != nil || u != d || u.String() != good {
		t.Fatalf("ParseDigest(upper) = %v, %v, want %s", u, err, good)
	}
	for _, bad := range []string{"", "abc", good[:63] + "g", good + "0", good[:63] + "G"} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted it", bad)
		}
	}
}

// TestDigest_JSON: digests travel as hex strings, also as map keys.
func TestDigest_JSON(t *testing.T) {
	d, _ := ParseDigest(strings.Repeat("ff", 32))
	b, err := json.Marshal(ListResponse{List: map[Digest]int{d: 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"generation":null,"list":{"` + strings.Repeat("ff", 32) + `":2}}`
	if string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back ListResponse
	if err := json.Unmarshal(b, &back); err != nil || back.List[d] != 2 {
		t.Fatalf("round trip: %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"list":{"XYZ":1}}`), &back); err == nil {
		t.Fatal("a malformed digest key decoded")
	}
}

// TestErrForCode: every code has its own sentinel.
func TestErrForCode(t *testing.T) {
	seen := map[error]string{}
	for _, c := range Codes() {
		e := ErrForCode(c)
		if e == nil {
			t.Fatalf("no sentinel for %s", c)
		}
		if o, ok := seen[e]; ok {
			t.Errorf("%s and %s share a sentinel", c, o)
		}
		seen[e] = c
	}
	if len(seen) != len(codeErrs) || len(seen) < 28 || ErrForCode("NOPE") != nil {
		t.Errorf("%d codes, ErrForCode(NOPE) = %v", len(seen), ErrForCode("NOPE"))
	}
}
