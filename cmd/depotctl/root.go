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
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1 // the daemon said no, or could not be reached, or I/O failed
	exitUsage   = 2 // unknown command or flag, wrong arguments
)

// DefaultURL is the daemon's sled API when neither --url nor DEPOT_URL is set.
const DefaultURL = "http://127.0.0.1:12345"

// app is one invocation: its streams, environment and global flags. It is
// built by run and shared by the commands it builds; nothing outlives it.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// Global flags, resolved against the environment by resolve.
	url      string // --url, DEPOT_URL
	depotURL string // --depot-url, DEPOT_DEPOT_URL; "" = ask /status
	json     bool   // --json
	token    string // --token, DEPOT_TOKEN, or the token file (auth.go)
	tokenSrc string // where token came from, for messages

	hc *http.Client // shared by every Client of this invocation
}

// run executes one command line and returns the process's exit code:
// 0 on success, 1 when the daemon refused or could not be reached (or
// local I/O failed), 2 for usage errors. Errors go to stderr as
// "depotctl: ...". It never calls os.Exit and keeps no state between
// calls, so tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, hc: client.DefaultHTTPClient()}
	defer a.hc.CloseIdleConnections()
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

The daemon is picked with --url (or DEPOT_URL, default ` + DefaultURL + `).
Artifact downloads use the daemon's repo-depot API: --depot-url (or
DEPOT_DEPOT_URL), by default the depot_url the daemon reports in /status.

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
	if a.depotURL == "" {
		a.depotURL = a.getenv("DEPOT_DEPOT_URL")
	}
	for _, u := range []struct{ flag, v string }{{"--url", a.url}, {"--depot-url", a.depotURL}} {
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

// client returns a client of the daemon's sled and operator APIs.
func (a *app) client() *client.Client {
	c := client.New(a.url, a.hc)
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
