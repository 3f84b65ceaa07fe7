// Command depotd is a sled's artifact depot: it keeps SHA-256-addressed
// artifacts on mirrored directories and serves the sled API (--listen),
// the read-only repo-depot API (--depot-listen) and, on a coordinator, the
// operator API (--operator-listen). This file is wiring only: flags,
// logging, the store, the server, signals; listeners.go opens the
// listeners, operatorauth.go decides how the operator API authenticates,
// flagtypes.go holds the flag types, stdlog.go routes the standard
// library's log.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"depot/depot"
	"depot/server"
	"depot/server/client"
	"depot/server/metrics"
	"depot/server/remote"
	"depot/store"
	"depot/tuf"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

type options struct {
	data              string
	mirrors           stringList
	listen            string
	depotListen       string
	operatorListen    string
	advertiseDepotURL string
	maxArtifactSize   byteSize
	maxRepoSize       byteSize
	maxArchiveEntries int
	logFormat         string
	shutdownTimeout   time.Duration

	coordinator        bool
	cat                catalogOptions // catalog.go
	trustedRoots       stringList
	allowExpired       bool
	sleds              stringList
	replicationPeriod  time.Duration
	minSledReplication int
	maxRequests        int
	maxPuts            int

	maxConcurrentCopies int
	maxQueuedCopies     int
	copyStallTimeout    time.Duration
	scrubInterval       time.Duration
	scrubRate           byteSize

	net              netOptions // listeners.go
	tokensFile       string
	adoptCatalog     string
	adoptCatalogFrom string
}

// run is main without the exit, so its status is testable. It returns 0
// after a clean shutdown, 1 on a runtime failure, 2 on a usage error.
func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "catalog" {
		return runCatalog(args[1:], os.Stdin, os.Stdout, stderr) // catalogcmd.go
	}
	var o options
	o.maxArtifactSize = server.DefaultMaxArtifactSize
	o.maxRepoSize = tuf.DefaultMaxExpandedSize
	o.scrubRate = 64 << 20
	fs := flag.NewFlagSet("depotd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.data, "data", "./depot-data", "data `directory`; the mirrors are <data>/m2a and <data>/m2b unless --mirror is given, the catalog is <data>/catalog.db")
	fs.Var(&o.mirrors, "mirror", "mirror `directory`, repeatable; replaces the two mirrors under --data (default <data>/m2a, <data>/m2b)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:12345", "`address` of the sled API")
	fs.StringVar(&o.depotListen, "depot-listen", "127.0.0.1:12348", "`address` of the read-only repo-depot API that peers copy from")
	fs.StringVar(&o.operatorListen, "operator-listen", "127.0.0.1:12346", "`address` of the operator API (coordinator role only)")
	fs.StringVar(&o.advertiseDepotURL, "advertise-depot-url", "", "`URL` peers use to reach the repo-depot API (default http(s)://<the bound --depot-listen address>)")
	fs.Var(&o.maxArtifactSize, "max-artifact-size", "largest artifact accepted: a `size` in bytes or with a unit (512MiB, 4GiB)")
	fs.Var(&o.maxRepoSize, "max-repo-size", "largest repository archive accepted, and largest total its entries may expand to (`size`)")
	fs.IntVar(&o.maxArchiveEntries, "max-archive-entries", tuf.DefaultMaxEntries, "most entries a repository archive may hold")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "how long in-flight requests may run after SIGTERM/SIGINT")
	fs.BoolVar(&o.coordinator, "coordinator", true, "run the coordinator role: operator API, catalog, replication to --sled sleds (false: a storage-only sled)")
	o.cat.register(fs)
	fs.Var(&o.trustedRoots, "trusted-root", "TUF root.json `file` to trust for uploads, repeatable (also POST /v1/system/update/trust-roots)")
	fs.BoolVar(&o.allowExpired, "allow-expired", false, "accept repositories whose TUF metadata has expired (every other check still applies)")
	fs.Var(&o.sleds, "sled", "a sled to replicate to, repeatable: control=URL,depot=URL[,id=ID], or only its control `URL` (then it is never a copy source: a sled's depot URL is never taken from the sled itself) (also PUT /v1/sleds/{id})")
	fs.DurationVar(&o.replicationPeriod, "replication-period", time.Minute, "time between replication activations (one also runs at once after every upload or delete)")
	fs.IntVar(&o.minSledReplication, "min-sled-replication", 1, "sleds that must hold every artifact before a repository is durable (3 for a rack)")
	fs.IntVar(&o.maxRequests, "replication-max-requests", depot.DefaultMaxRequests, "most put and copy requests one replication activation sends")
	fs.IntVar(&o.maxPuts, "replication-max-puts", depot.DefaultMaxPuts, "most PUTs (from the coordinator's own copies) one replication activation sends")
	fs.IntVar(&o.maxConcurrentCopies, "max-concurrent-copies", 4, "copy-from-depot jobs running at once; more wait in the queue")
	fs.IntVar(&o.maxQueuedCopies, "max-queued-copies", 64, "accepted copy-from-depot jobs waiting for a running slot; more are refused with 429 (0: none wait)")
	fs.DurationVar(&o.copyStallTimeout, "copy-stall-timeout", time.Minute, "a copy that receives no bytes for this long fails")
	fs.DurationVar(&o.scrubInterval, "scrub-interval", 24*time.Hour, "time between background scrubs that re-hash every artifact (0: only on POST /scrub)")
	fs.Var(&o.scrubRate, "scrub-rate", "scrub read rate in bytes per second (`size`)")
	o.net.flags(fs)
	fs.StringVar(&o.tokensFile, "tokens-file", "", "operator tokens `file`: one \"NAME ROLE sha256:HEX\" a line, re-read when it changes (without any token the operator API is open, on loopback only)")
	fs.StringVar(&o.adoptCatalog, "adopt-catalog", "", "admin act at start-up: move this sled to the catalog with this `id` (see GET /v1/replication/status of its coordinator); needs --adopt-catalog-from")
	fs.StringVar(&o.adoptCatalogFrom, "adopt-catalog-from", "", "the catalog `id` the sled serves now, or none for a config that names no catalog; a sled that serves another is left alone and depotd exits")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: depotd [flags]\n       depotd catalog export|import [flags]   (moves a catalog between bbolt and etcd; depotd catalog -h)\n\nServes a sled's artifact depot and, unless --coordinator=false, the coordinator role.\n\nFlags:\n")
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
	if (o.adoptCatalog == "") != (o.adoptCatalogFrom == "") {
		fmt.Fprintf(stderr, "depotd: --adopt-catalog and --adopt-catalog-from go together\n")
		return 2
	}
	if !o.coordinator && (len(o.sleds) > 0 || len(o.trustedRoots) > 0 || o.tokensFile != "") {
		fmt.Fprintf(stderr, "depotd: --sled, --trusted-root and --tokens-file need the coordinator role (drop --coordinator=false)\n")
		return 2
	}
	if err := o.cat.validate(); err != nil {
		fmt.Fprintf(stderr, "depotd: %v\n", err)
		return 2
	}
	if o.cat.isEtcd() && o.coordinator && (o.cat.sledID == "" || o.cat.sledID == depot.LocalSledID) {
		// Two coordinators that both call their sled "local" would each
		// take the other's staged uploads for their own.
		fmt.Fprintf(stderr, "depotd: --catalog etcd://... needs --sled-id: this coordinator's own sled id in the --sled list\n")
		return 2
	}
	if err := checkOperatorAuth(o); err != nil {
		fmt.Fprintf(stderr, "depotd: %v\n", err)
		return 1
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
	routeStdLog(log)

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

func serve(ctx context.Context, o options, log *slog.Logger) (err error) {
	mirrors := []string(o.mirrors)
	if len(mirrors) == 0 {
		mirrors = []string{filepath.Join(o.data, "m2a"), filepath.Join(o.data, "m2b")}
	}
	st, err := store.Open(ctx, store.Options{
		Mirrors: mirrors, Logger: log, ScrubInterval: o.scrubInterval, ScrubRate: int64(o.scrubRate),
	})
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
		if cerr := st.Close(); cerr != nil {
			log.Error("close store", "error", cerr)
		}
	}()

	tlsr, err := o.net.reloader(ctx, log)
	if err != nil {
		return err
	}
	hc := client.NewHTTPClient(tlsr)
	policy, err := client.NewSourcePolicy(o.net.copySourceAllow, tlsr.HasCA(), int64(o.maxArtifactSize))
	if err != nil {
		return err
	}
	writes := depot.NewWriteSlots(o.net.maxConcurrentWrites)
	sled, err := depot.NewSled(ctx, depot.SledOptions{
		Store: st, Peer: remote.NewPeer(policy, tlsr), Logger: log, WriteSlots: writes,
		MaxConcurrentCopies: o.maxConcurrentCopies, MaxQueuedCopies: queuedCopies(o.maxQueuedCopies),
		CopyStallTimeout: o.copyStallTimeout,
		// A coordinator restores the local config from its catalog before
		// the reconciler may delete anything.
		HoldReconciler: o.coordinator,
	})
	if err != nil {
		return fmt.Errorf("start sled service: %w", err)
	}
	// Runs after the server has drained: cancels copies still running.
	defer sled.Close()
	if o.adoptCatalog != "" {
		if err := sled.AdoptCatalog(ctx, o.adoptCatalogFrom, o.adoptCatalog); err != nil {
			return fmt.Errorf("--adopt-catalog: %w", err)
		}
	}

	lns, err := openListeners(o, tlsr, log)
	if err != nil {
		return err
	}
	depotURL := o.advertiseDepotURL
	if depotURL == "" {
		depotURL = lns.depotURL()
	}

	// Metrics exist before the coordinator, whose first activation may
	// report before this function returns; the coordinator parts are read
	// only when scraped, through the server started below.
	var coord *depot.Coordinator
	var rep *depot.Replicator
	mx := metrics.New(metricSources(st, sled, o.coordinator, &coord, &rep))
	if o.coordinator {
		var stopCoord func()
		coord, rep, stopCoord, err = startCoordinator(ctx, o, log, st, sled, depotURL, hc, func(a depot.Activation) {
			mx.ObserveActivation(a.Finished.Sub(a.Started))
		})
		if err != nil {
			lns.close()
			return err
		}
		defer stopCoord()
	}

	var tokens *depot.TokenFile
	if o.coordinator {
		if tokens, err = operatorAuth(ctx, o, log, coord.Catalog()); err != nil {
			lns.close()
			return err
		}
	}

	srv := server.New(server.Config{
		Sled:            sled,
		Coordinator:     coord,
		Replicator:      rep,
		Metrics:         mx,
		Logger:          log,
		Version:         version,
		MaxArtifactSize: int64(o.maxArtifactSize),
		MaxRepoSize:     int64(o.maxRepoSize),
		ShutdownTimeout: o.shutdownTimeout,
		DepotURL:        depotURL,

		RequireCoordinatorRole: tlsr.RequiresClientCerts(),
		WriteSlots:             writes,
		MinBodyRate:            o.net.minBodyRate(),
		MinBodyRateWindow:      o.net.minBodyRateWindow,
		DownloadStallTimeout:   o.net.downloadStallTimeout,
		Tokens:                 tokens,
		OperatorAddr:           o.operatorListen,
	})
	// Tests parse this line for the ports when listening on port 0.
	log.Info("listening", "sled", lns.sled.Addr().String(), "depot", lns.depot.Addr().String(),
		"operator", lns.operatorAddr(), "tls", tlsr.ServesTLS(), "mtls", tlsr.RequiresClientCerts(),
		"mirrors", strings.Join(mirrors, ","), "coordinator", o.coordinator, "version", version)
	err = srv.Serve(ctx, lns.sled, lns.depot, lns.operator)
	log.Info("stopped", "error", err)
	return err
}

// startCoordinator opens the catalog, recovers upload sagas, trusts the
// --trusted-root files, registers the --sled sleds, starts the local
// sled's reconciler and the replication loop. stop ends the loop and closes
// the catalog.
func startCoordinator(ctx context.Context, o options, log *slog.Logger, st *store.Store, sled *depot.Sled,
	depotURL string, hc *http.Client, onActivation func(depot.Activation)) (*depot.Coordinator, *depot.Replicator, func(), error) {
	cat, err := o.cat.open(ctx, o.data, log)
	if err != nil {
		return nil, nil, nil, err
	}
	selfSled := o.cat.sledID
	if selfSled == "" {
		selfSled = depot.LocalSledID
	}
	host, _ := os.Hostname()
	presence, err := cat.Join(ctx, depot.PresenceInfo{SledID: selfSled, Host: host}, o.cat.etcdTTL, log)
	if err != nil {
		cat.Close()
		return nil, nil, nil, fmt.Errorf("join the catalog's coordinators: %w", err)
	}
	if cat.Shared() {
		log.Info("catalog shared with other coordinators", "catalog", cat.Where(), "coordinator", presence.ID(), "sled_id", selfSled)
	}
	fail := func(err error) (*depot.Coordinator, *depot.Replicator, func(), error) {
		presence.Close()
		cat.Close()
		return nil, nil, nil, err
	}
	coord, err := depot.NewCoordinator(ctx, depot.CoordinatorOptions{
		Catalog: cat, Local: sled, Spool: st, Logger: log,
		Presence: presence, SelfSledID: selfSled,
		TUF: tuf.Options{
			Limits:       tuf.Limits{MaxEntries: o.maxArchiveEntries, MaxExpandedSize: int64(o.maxRepoSize)},
			AllowExpired: o.allowExpired,
		},
		OnSagaStep: crashAtSagaStep(log),
	})
	if err != nil {
		return fail(fmt.Errorf("start coordinator: %w", err))
	}
	for _, file := range o.trustedRoots {
		doc, err := os.ReadFile(file)
		if err != nil {
			return fail(fmt.Errorf("--trusted-root: %w", err))
		}
		if _, _, err := coord.AddTrustRoot(ctx, doc, file, nil); err != nil {
			return fail(fmt.Errorf("--trusted-root %s: %w", file, err))
		}
	}
	for _, flagValue := range o.sleds {
		rec, err := depot.ParseSledFlag(flagValue)
		if err != nil {
			return fail(err)
		}
		if _, err := cat.PutSled(ctx, rec, nil); err != nil {
			return fail(fmt.Errorf("--sled %s: %w", flagValue, err))
		}
	}
	rep := depot.NewReplicator(coord, depot.ReplicationOptions{
		Period:         o.replicationPeriod,
		MinReplication: o.minSledReplication,
		Limits:         depot.PlanLimits{MaxRequests: o.maxRequests, MaxPuts: o.maxPuts},
		Local:          depot.LocalSled{Sled: sled, DepotURL: depotURL},
		LocalStore:     st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			return remote.NewSledClient(rec.ControlURL, hc)
		},
		Logger:       log,
		OnActivation: onActivation,
	})
	sled.StartReconciler()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep.Run(rctx)
	}()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		coord.Follow(rctx, 0)
	}()
	stop := func() {
		cancel()
		<-done
		<-followed
		// Gives up the lease: another coordinator leads at once.
		if err := presence.Close(); err != nil {
			log.Warn("leave the catalog's coordinators", "error", err)
		}
		if err := cat.Close(); err != nil {
			log.Error("close catalog", "error", err)
		}
	}
	return coord, rep, stop, nil
}

// crashAtSagaStep is a fault-injection hook for the crash tests: with
// DEPOTD_CRASH_AT_SAGA_STEP=<step> in the environment, the daemon kills
// itself with SIGKILL when an upload saga reaches that step.
func crashAtSagaStep(log *slog.Logger) func(string) {
	at := os.Getenv("DEPOTD_CRASH_AT_SAGA_STEP")
	if at == "" {
		return nil
	}
	log.Warn("fault injection: SIGKILL at upload saga step", "step", at)
	return func(step string) {
		if step == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}

// metricSources reads what /metrics shows; coordinator parts only when
// the role is on. coord and rep are set before the server starts.
func metricSources(st *store.Store, sled *depot.Sled, coordinator bool, coord **depot.Coordinator, rep **depot.Replicator) metrics.Sources {
	src := metrics.Sources{Mirrors: st.Mirrors, Scrub: st.ScrubStatus, Sled: sled.Status}
	if !coordinator {
		return src
	}
	// A scrape has no context of its own; one without a catalog (etcd
	// without quorum) must not hang.
	scrapeCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 2*time.Second)
	}
	src.Replication = func() depot.ReplicationStatus {
		ctx, cancel := scrapeCtx()
		defer cancel()
		return (*rep).Status(ctx)
	}
	src.RepoStates = func() map[string]int {
		out := map[string]int{}
		ctx, cancel := scrapeCtx()
		defer cancel()
		repos, err := (*coord).Catalog().Repos(ctx)
		if err != nil {
			return out
		}
		for _, r := range repos {
			out[(*rep).Progress(r).State]++
		}
		return out
	}
	return src
}

// queuedCopies maps --max-queued-copies to SledOptions.MaxQueuedCopies,
// where 0 means the default and a negative number no queue.
func queuedCopies(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
