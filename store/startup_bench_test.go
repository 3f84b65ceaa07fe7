package store_test

import (
	"context"
	"os"
	"testing"

	"depot/store"
)

// BenchmarkOpen_Tree opens the store over an existing tree, such as the
// one scripts/benchstartup makes (DEPOT_BENCH_TREE=<dir> holding m2a and
// m2b); skipped without it.
func BenchmarkOpen_Tree(b *testing.B) {
	dir := os.Getenv("DEPOT_BENCH_TREE")
	if dir == "" {
		b.Skip("DEPOT_BENCH_TREE not set")
	}
	for b.Loop() {
		s, err := store.Open(context.Background(), store.Options{Mirrors: []string{dir + "/m2a", dir + "/m2b"}, Logger: discardLogger()})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
