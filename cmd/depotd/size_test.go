package main

import "testing"

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"1", 1}, {"4096", 4096}, {"512MiB", 512 << 20}, {"4GiB", 4 << 30}, {"4G", 4 << 30},
		{"1KiB", 1024}, {"2TiB", 2 << 40}, {"10MB", 10e6}, {"1 GiB", 1 << 30}, {"7B", 7},
	} {
		got, err := parseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseSize_Invalid(t *testing.T) {
	for _, in := range []string{"", "0", "-1", "4X", "GiB", "1.5GiB", "99999999999TiB"} {
		if n, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{4 << 30: "4GiB", 512 << 20: "512MiB", 1000: "1000", 1536: "1536", 2048: "2KiB"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
	}
}
