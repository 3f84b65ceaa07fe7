package store

import (
	"slices"
	"testing"
)

func dg(i byte) Digest { return Digest{i} }

// ChangedSince names every digest changed after v, or says it cannot.
func TestChangeLog_Since(t *testing.T) {
	var c changeLog
	c.note(dg(1))
	v1 := c.version()
	c.note(dg(2), dg(3))
	c.note(dg(2))
	ds, now, ok := c.since(v1)
	slices.SortFunc(ds, func(a, b Digest) int { return int(a[0]) - int(b[0]) })
	if !ok || now != c.version() || !slices.Equal(slices.Compact(ds), []Digest{dg(2), dg(3)}) {
		t.Fatalf("since(v1) = %v, %d, %v; want [2 3], %d, true", ds, now, ok, c.version())
	}
	if ds, _, ok := c.since(c.version()); !ok || len(ds) != 0 {
		t.Fatalf("since(now) = %v, %v; want nothing, true", ds, ok)
	}
	v := c.version()
	c.note() // a mirror's health: every digest
	if _, _, ok := c.since(v); ok {
		t.Fatal("since a wide change: ok, want not")
	}
	if _, _, ok := c.since(c.version()); !ok {
		t.Fatal("since the wide change itself: not ok")
	}
}

// A reader older than what the log holds is told to start afresh; one the
// log still covers gets every digest.
func TestChangeLog_Trimmed(t *testing.T) {
	var c changeLog
	start := c.version()
	var mid uint64
	for i := range 3 * maxChangeLog / 2 {
		c.note(dg(byte(i)), dg(byte(i+1)))
		if i == 3*maxChangeLog/2-100 {
			mid = c.version()
		}
	}
	if _, _, ok := c.since(start); ok {
		t.Fatal("since before the log: ok, want not")
	}
	ds, _, ok := c.since(mid)
	if !ok {
		t.Fatal("since a version the log covers: not ok")
	}
	if want := 2 * 99; len(ds) != want {
		t.Fatalf("since(mid) gave %d digests, want %d", len(ds), want)
	}
}
