// Command depotd is a sled's artifact depot: it keeps SHA-256-addressed
// artifacts on mirrored directories and serves the sled API (--listen) and
// the read-only repo-depot API (--depot-listen). This file is wiring only:
// flags, logging, the store, the server, signals.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"depot/server"
	"depot/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

type options struct {
	data            string
	mirrors         stringList
	listen          string
	depotListen     string
	maxArtifactSize byteSize
	logFormat       string
	shutdownTimeout time.Duration
}

// run is main without the exit, so its status is testable. It returns 0
// after a clean shutdown, 1 on a runtime failure, 2 on a usage error.
func run(args []string, stderr io.Writer) int {
	var o options
	o.maxArtifactSize = server.DefaultMaxArtifactSize
	fs := flag.NewFlagSet("depotd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.data, "data", "./depot-data", "data `directory`; the mirrors are <data>/m2a and <data>/m2b unless --mirror is given")
	fs.Var(&o.mirrors, "mirror", "mirror `directory`, repeatable; replaces the two mirrors under --data (default <data>/m2a, <data>/m2b)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:12345", "`address` of the sled API")
	fs.StringVar(&o.depotListen, "depot-listen", "127.0.0.1:12348", "`address` of the read-only repo-depot API that peers copy from")
	fs.Var(&o.maxArtifactSize, "max-artifact-size", "largest artifact accepted: a `size` in bytes or with a unit (512MiB, 4GiB)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "how long in-flight requests may run after SIGTERM/SIGINT")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: depotd [flags]\n\nServes a sled's artifact depot.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "depotd: unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	var h slog.Handler
	switch o.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, nil)
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	default:
		fmt.Fprintf(stderr, "depotd: --log-format must be text or json, not %q\n", o.logFormat)
		return 2
	}
	log := slog.New(h)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	context.AfterFunc(ctx, func() {
		log.Info("signal received; shutting down", "timeout", o.shutdownTimeout)
		stop() // a second signal kills at once instead of waiting for the drain
	})
	if err := serve(ctx, o, log); err != nil {
		log.Error("depotd failed", "error", err)
		fmt.Fprintf(stderr, "depotd: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, o options, log *slog.Logger) error {
	mirrors := []string(o.mirrors)
	if len(mirrors) == 0 {
		mirrors = []string{filepath.Join(o.data, "m2a"), filepath.Join(o.data, "m2b")}
	}
	st, err := store.Open(ctx, store.Options{Mirrors: mirrors, Logger: log})
	if errors.Is(err, store.ErrLocked) {
		where := o.data
		if len(o.mirrors) > 0 {
			where = strings.Join(mirrors, ", ")
		}
		return fmt.Errorf("another depotd is using %s (%w)", where, err)
	}
	if err != nil {
		return fmt.Errorf("open store on %s: %w", strings.Join(mirrors, ", "), err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "error", err)
		}
	}()

	sledLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	depotLn, err := net.Listen("tcp", o.depotListen)
	if err != nil {
		sledLn.Close()
		return fmt.Errorf("--depot-listen: %w", err)
	}
	srv := server.New(server.Config{
		Sled:            server.Unmanaged(st),
		Logger:          log,
		Version:         version,
		MaxArtifactSize: int64(o.maxArtifactSize),
		ShutdownTimeout: o.shutdownTimeout,
	})
	// Tests parse this line for the ports when listening on port 0.
	log.Info("listening", "sled", sledLn.Addr().String(), "depot", depotLn.Addr().String(),
		"mirrors", strings.Join(mirrors, ","), "version", version)
	err = srv.Serve(ctx, sledLn, depotLn)
	log.Info("stopped", "error", err)
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	if s == "" {
		return errors.New("empty path")
	}
	*l = append(*l, s)
	return nil
}

// byteSize is a size flag: plain bytes, or a number with a unit, binary
// (KiB, MiB, GiB, TiB; also K, M, G, T) or decimal (KB, MB, GB, TB).
type byteSize int64

func (b *byteSize) String() string { return formatSize(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

var units = []struct {
	suffix string
	mult   int64
}{
	// Longer suffixes first, so "GiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size: want a positive number of bytes, optionally with a unit (512MiB, 4GiB)", s)
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
