package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"depot/server/client"
	"depot/server/transport"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1 // the daemon said no, or could not be reached, or I/O failed
	exitUsage   = 2 // unknown command or flag, wrong arguments
)

// Defaults of the daemon's APIs, matching depotd's defaults.
const (
	// DefaultURL is the sled API when neither --url nor DEPOT_URL is set.
	DefaultURL = "http://127.0.0.1:12345"
	// DefaultOperatorURL is the operator API when neither --operator-url
	// nor DEPOT_OPERATOR_URL is set.
	DefaultOperatorURL = "http://127.0.0.1:12346"
)

// app is one invocation: its streams, environment and global flags. It is
// built by run and shared by the commands it builds; nothing outlives it.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// Global flags, resolved against the environment by resolve.
	url         string // --url, DEPOT_URL
	operatorURL string // --operator-url, DEPOT_OPERATOR_URL
	depotURL    string // --depot-url, DEPOT_DEPOT_URL; "" = ask /status
	json        bool   // --json
	// TLS files for https URLs: the CA to verify the daemon against, and
	// the client pair to present (--tls-*, DEPOT_TLS_*).
	tlsCA, tlsCert, tlsKey string
	token                  string // --token, DEPOT_TOKEN, or the token file (auth.go)
	tokenSrc               string // where token came from, for messages

	hc *http.Client // shared by every Client of this invocation
}

// run executes one command line and returns the process's exit code:
// 0 on success, 1 when the daemon refused or could not be reached (or
// local I/O failed), 2 for usage errors. Errors go to stderr as
// "depotctl: ...". It never calls os.Exit and keeps no state between
// calls, so tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, hc: client.DefaultHTTPClient()}
	defer func() { a.hc.CloseIdleConnections() }() // resolve may replace a.hc
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var re *runtimeError
	if errors.As(err, &re) {
		fmt.Fprintf(stderr, "depotctl: %s\n", describe(re.err))
		return exitRuntime
	}
	fmt.Fprintf(stderr, "depotctl: %s\n", strings.TrimSpace(err.Error()))
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "depotctl",
		Short: "Operate depotd: upload repositories, manage sleds, move artifacts",
		Long: `depotctl talks to a depotd daemon through its HTTP APIs.

Each of the daemon's APIs has its own address: the sled API --url (or
DEPOT_URL, default ` + DefaultURL + `), the operator API of a
coordinator (upload, repos, trust-roots, sleds, replication) --operator-url
(or DEPOT_OPERATOR_URL, default ` + DefaultOperatorURL + `), and the
repo-depot API for downloads --depot-url (or DEPOT_DEPOT_URL, by default
the depot_url the daemon reports in /status).

Over https, the daemon is verified against --tls-ca and the client
certificate --tls-client-cert/--tls-client-key is presented (a daemon
with mTLS requires one; sled-API changes need the coordinator role).

Output is readable tables; --json prints the typed values as JSON instead.
Exit codes: 0 success, 1 the daemon refused or could not be reached,
2 usage errors.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: func(*cobra.Command, []string) error { return a.resolve() },
		// Args stays nil: cobra then reports unknown commands itself.
		RunE: needCommand,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "depotd's sled API base URL (env DEPOT_URL; default "+DefaultURL+")")
	pf.StringVar(&a.operatorURL, "operator-url", "", "the coordinator's operator API base URL (env DEPOT_OPERATOR_URL; default "+DefaultOperatorURL+")")
	pf.StringVar(&a.tlsCA, "tls-ca", "", "PEM file of the CA to verify an https daemon against (env DEPOT_TLS_CA; default: the system roots)")
	pf.StringVar(&a.tlsCert, "tls-client-cert", "", "PEM file of the client certificate to present over https (env DEPOT_TLS_CLIENT_CERT)")
	pf.StringVar(&a.tlsKey, "tls-client-key", "", "PEM file of --tls-client-cert's key (env DEPOT_TLS_CLIENT_KEY)")
	pf.StringVar(&a.depotURL, "depot-url", "", "depotd's repo-depot API base URL for downloads (env DEPOT_DEPOT_URL; default: the daemon's depot_url from /status)")
	pf.BoolVar(&a.json, "json", false, "print results as JSON")
	pf.StringVar(&a.token, "token", "", "operator API bearer token (env DEPOT_TOKEN; else the file depot/token in the user's config folder, mode 0600); prefer the environment or the file: command lines are visible to other users")

	root.AddCommand(
		a.uploadCmd(),
		a.reposCmd(),
		a.trustRootsCmd(),
		a.sledsCmd(),
		a.artifactsCmd(),
		a.statusCmd(),
		a.replicationCmd(),
		a.configCmd(),
		a.scrubCmd(),
		a.copiesCmd(),
		a.auditCmd(),
		a.tokensCmd(),
	)
	return root
}

// resolve applies the environment to global flags that were not given.
func (a *app) resolve() error {
	if a.url == "" {
		a.url = a.getenv("DEPOT_URL")
	}
	if a.url == "" {
		a.url = DefaultURL
	}
	if a.operatorURL == "" {
		a.operatorURL = a.getenv("DEPOT_OPERATOR_URL")
	}
	if a.operatorURL == "" {
		a.operatorURL = DefaultOperatorURL
	}
	if a.depotURL == "" {
		a.depotURL = a.getenv("DEPOT_DEPOT_URL")
	}
	for _, f := range []struct {
		v   *string
		env string
	}{{&a.tlsCA, "DEPOT_TLS_CA"}, {&a.tlsCert, "DEPOT_TLS_CLIENT_CERT"}, {&a.tlsKey, "DEPOT_TLS_CLIENT_KEY"}} {
		if *f.v == "" {
			*f.v = a.getenv(f.env)
		}
	}
	if a.tlsCA != "" || a.tlsCert != "" || a.tlsKey != "" {
		r, err := transport.NewReloader(transport.Files{CA: a.tlsCA, ClientCert: a.tlsCert, ClientKey: a.tlsKey}, nil)
		if err != nil {
			return &usageError{fmt.Errorf("TLS files: %w", err)}
		}
		a.hc = client.NewHTTPClient(r)
	}
	for _, u := range []struct{ flag, v string }{{"--url", a.url}, {"--operator-url", a.operatorURL}, {"--depot-url", a.depotURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return &usageError{fmt.Errorf("%s %q: want an http:// or https:// URL", u.flag, u.v)}
		}
	}
	if err := a.resolveToken(); err != nil {
		return &runtimeError{err} // not a mistake on the command line: exit 1
	}
	return nil
}

// client returns a client of the daemon's sled API.
func (a *app) client() *client.Client { return client.New(a.url, a.hc) }

// opClient returns a client of the coordinator's operator API, with the
// operator's bearer token.
func (a *app) opClient() *client.Client {
	c := client.New(a.operatorURL, a.hc)
	c.Token = a.token
	return c
}

// depotClient returns a client of the daemon's repo-depot API: --depot-url,
// else the depot_url that /status reports.
func (a *app) depotClient(ctx context.Context) (*client.Client, error) {
	if a.depotURL != "" {
		return client.New(a.depotURL, a.hc), nil
	}
	st, err := a.client().Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.DepotURL == "" {
		return nil, errors.New("the daemon reports no depot_url in /status; pass --depot-url")
	}
	return client.New(st.DepotURL, a.hc), nil
}

// group returns a command that only holds subcommands: run bare or with an
// unknown subcommand, it is a usage error (cobra would print help and exit 0).
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: needCommand,
	}
	c.AddCommand(subs...)
	return c
}

// needCommand is the action of a command run without its subcommand.
func needCommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() && s.Name() != "help" {
			names = append(names, s.Name())
		}
	}
	return &usageError{fmt.Errorf("%s needs a command: %s", cmd.CommandPath(), strings.Join(names, ", "))}
}

// exactArgs is cobra.ExactArgs with a message that shows the usage line.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %d argument(s), got %d (usage: %s)", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// usageError is a mistake on the command line: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

// runtimeError is a failure while doing the work: exit 1.
type runtimeError struct{ err error }

func (e *runtimeError) Error() string { return e.err.Error() }
func (e *runtimeError) Unwrap() error { return e.err }

// action adapts a command's work to cobra: its errors are runtime errors
// (exit 1) unless they are usage errors. Errors cobra makes itself (flags,
// argument counts, unknown commands) never pass through here, and so are
// usage errors.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		if err == nil {
			return nil
		}
		var ue *usageError
		if errors.As(err, &ue) {
			return ue
		}
		return &runtimeError{err}
	}
}

// describe says what went wrong, for the "depotctl: " line: an answer of the
// daemon as "CODE: message (request_id ID)", an unreachable daemon as
// "cannot reach depotd at URL: reason", anything else as it is.
func describe(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		code := ae.Code
		if code == "" {
			code = fmt.Sprintf("HTTP %d %s", ae.Status, http.StatusText(ae.Status))
		}
		msg := code
		if ae.Message != "" {
			msg += ": " + ae.Message
		}
		if ae.RequestID != "" {
			msg += " (request_id " + ae.RequestID + ")"
		}
		return msg + authHint(ae)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		where := "the daemon"
		var ue *url.Error
		if errors.As(err, &ue) {
			if u, perr := url.Parse(ue.URL); perr == nil {
				where = u.Scheme + "://" + u.Host
			}
		}
		reason := oe.Err.Error()
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			reason = "connection refused"
		case oe.Timeout():
			reason = "connect timed out"
		}
		return fmt.Sprintf("cannot reach depotd at %s: %s", where, reason)
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return err.Error()
}
