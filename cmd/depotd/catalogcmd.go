package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"depot/depot"
	"depot/store"
)

// runCatalog is `depotd catalog export|import`: it moves a catalog between
// a bbolt file and etcd (either way), as JSON lines on stdout/stdin. It
// lives in depotd, not depotctl, because it opens the catalog's storage
// itself (depotctl links neither bbolt nor etcd). Exit codes as run's.
func runCatalog(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintf(stderr, `usage: depotd catalog export [flags] > FILE
       depotd catalog import [flags] < FILE

export writes every record of the catalog (bbolt file, or etcd://...) to
stdout; import writes such a file into an empty catalog. A bbolt catalog
must not be in use by a running depotd. An import cut off midway leaves the
catalog marked half-imported (no depotd opens it); running the same import
again completes it.

Flags:
`)
	}
	if len(args) == 0 || (args[0] != "export" && args[0] != "import") {
		usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	verb := args[0]
	var cat catalogOptions
	var data, tmp string
	var timeout time.Duration
	fs := flag.NewFlagSet("depotd catalog "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&data, "data", "./depot-data", "data `directory` whose catalog.db is the catalog when --catalog is not given")
	cat.registerWhere(fs)
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, "bound on each etcd transaction (the export reads in one)")
	fs.StringVar(&tmp, "tmp", "", "`directory` where import keeps its checked copy of stdin (default the system's)")
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "depotd catalog %s: unexpected arguments: %q\n", verb, fs.Args())
		return 2
	}
	if err := cat.validate(); err != nil {
		fmt.Fprintf(stderr, "depotd catalog %s: %v\n", verb, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := openCatalogStorage(ctx, cat, data, verb == "import", timeout)
	if err != nil {
		fmt.Fprintf(stderr, "depotd catalog %s: %v\n", verb, err)
		return 1
	}
	defer s.Close()
	var sum depot.ExportSummary
	if verb == "export" {
		sum, err = depot.ExportCatalog(ctx, s, stdout)
	} else {
		sum, err = depot.ImportCatalog(ctx, s, stdin, tmp)
	}
	if err != nil {
		fmt.Fprintf(stderr, "depotd catalog %s: %v\n", verb, err)
		return 1
	}
	to := "from"
	if verb == "import" {
		to = "into"
	}
	fmt.Fprintf(stderr, "depotd catalog %s: catalog %s, %d records (%s) %s %s\n",
		verb, sum.CatalogID, sum.Records, bucketCounts(sum.Buckets), to, s.Where())
	return 0
}

func openCatalogStorage(ctx context.Context, c catalogOptions, data string, create bool, timeout time.Duration) (*depot.CatalogStorage, error) {
	if c.isEtcd() {
		opts, err := c.etcdOptions()
		if err != nil {
			return nil, err
		}
		opts.Timeout = timeout
		return depot.OpenEtcdCatalogStorage(ctx, opts)
	}
	path := c.path(data)
	if create {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create catalog folder: %w", err)
		}
	}
	s, err := depot.OpenCatalogFile(path, create, time.Second)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("a running depotd is using the catalog %s; stop it first (%w)", path, err)
	}
	return s, err
}

func bucketCounts(m map[string]int) string {
	var parts []string
	for _, b := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", b, m[b]))
	}
	return strings.Join(parts, ", ")
}
