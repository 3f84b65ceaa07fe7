package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"depot/depot/auditchain"
	"depot/depot/authtoken"
	"depot/server/api"
	"depot/server/client"
)

// tokenFileName is the token file under the user's config folder
// ($XDG_CONFIG_HOME, else $HOME/.config): one line, the token.
const tokenFileName = "depot/token"

// maxTokenFile bounds the token file read.
const maxTokenFile = 4 << 10

// resolveToken picks the operator token: --token, else DEPOT_TOKEN, else
// the token file if it exists. A token file that others may read is
// refused, like ssh refuses such a key.
func (a *app) resolveToken() error {
	switch {
	case a.token != "":
		a.tokenSrc = "--token"
		return nil
	case a.getenv("DEPOT_TOKEN") != "":
		a.token, a.tokenSrc = strings.TrimSpace(a.getenv("DEPOT_TOKEN")), "DEPOT_TOKEN"
		return nil
	}
	path := a.tokenFilePath()
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("token file %s is accessible to other users (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return fmt.Errorf("token file %s: %w", path, err)
	}
	a.token, a.tokenSrc = strings.TrimSpace(string(b)), path
	if a.token == "" {
		return fmt.Errorf("token file %s is empty", path)
	}
	return nil
}

// tokenFilePath is the token file's path, or "" when neither
// XDG_CONFIG_HOME nor HOME is set.
func (a *app) tokenFilePath() string {
	dir := a.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := a.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, tokenFileName)
}

// authHint adds what to do to a 401 or 403 answer.
func authHint(ae *client.APIError) string {
	switch ae.Status {
	case http.StatusUnauthorized:
		return "\n  the operator API needs a token: give --token, set DEPOT_TOKEN, or write it to $XDG_CONFIG_HOME/" +
			tokenFileName + " (mode 0600); an admin makes one with depotctl tokens create"
	case http.StatusForbidden:
		return "\n  your token's role does not allow this; ask an admin for a token with the role named above"
	}
	return ""
}

func (a *app) auditCmd() *cobra.Command {
	var follow bool
	var since uint64
	audit := &cobra.Command{
		Use:   "audit [--follow] [--since SEQ]",
		Short: "Print the audit log as JSON lines (one record a line, as stored, for a log shipper)",
		Long: `audit prints the coordinator's audit log, one JSON record a line, exactly
as stored (so the lines can be verified later). With --follow it keeps
long-polling for new records until interrupted.`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c := a.opClient()
			for {
				wait := time.Duration(0)
				if follow {
					wait = 30 * time.Second
				}
				page, err := c.Audit(cmd.Context(), since, 0, wait)
				if err != nil {
					return err
				}
				for _, line := range page.Items {
					var hd struct {
						Seq uint64 `json:"seq"`
					}
					if err := json.Unmarshal(line, &hd); err != nil {
						return fmt.Errorf("audit record after %d is not JSON: %w", since, err)
					}
					since = hd.Seq
					if _, err := fmt.Fprintf(a.stdout, "%s\n", line); err != nil {
						return err
					}
				}
				if !follow && since >= page.HeadSeq {
					return nil
				}
			}
		}),
	}
	audit.Flags().BoolVar(&follow, "follow", false, "keep printing new records as they are appended")
	audit.Flags().Uint64Var(&since, "since", 0, "start after this seq")

	var checkpoint string
	verify := &cobra.Command{
		Use:   "verify [--checkpoint SEQ:HASH]",
		Short: "Recompute the audit log's hash chain and name the first record that does not match",
		Long: `verify reads the whole audit log and recomputes every record's hash from
the previous one and the record's stored bytes. It names the first record
that does not match (changed, removed or out of order) and exits 1. On
success it prints the head (SEQ:HASH): keep it elsewhere and pass it as
--checkpoint later, which also catches a log rewritten from some point on
or cut short.`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			var cp *auditchain.Checkpoint
			if checkpoint != "" {
				p, err := auditchain.ParseCheckpoint(checkpoint)
				if err != nil {
					return usagef("--checkpoint: %v", err)
				}
				cp = &p
			}
			c := a.opClient()
			var v auditchain.Verifier
			var since uint64
			cpSeen := false
			for {
				page, err := c.Audit(cmd.Context(), since, 0, 0)
				if err != nil {
					return err
				}
				for _, line := range page.Items {
					if err := v.Next(line); err != nil {
						return err
					}
					seq, h := v.Head()
					if cp != nil && seq == cp.Seq {
						if h != cp.Hash {
							return fmt.Errorf("audit record %d has hash %s, but the checkpoint says %s: the log was rewritten", seq, h, cp.Hash)
						}
						cpSeen = true
					}
				}
				since, _ = v.Head()
				if len(page.Items) == 0 || since >= page.HeadSeq {
					break
				}
			}
			seq, h := v.Head()
			if cp != nil && !cpSeen {
				return fmt.Errorf("the audit log ends at record %d, before the checkpoint's record %d: records were removed", seq, cp.Seq)
			}
			head := auditchain.Checkpoint{Seq: seq, Hash: h}
			return a.emit(map[string]any{"ok": true, "records": seq, "head": head.String()}, func(w io.Writer) {
				fmt.Fprintf(w, "ok: %d records, chain intact\nhead: %s\n", seq, head)
			})
		}),
	}
	verify.Flags().StringVar(&checkpoint, "checkpoint", "", "a head kept from an earlier verify (SEQ:HASH) that the chain must still pass through")
	audit.AddCommand(verify)
	return audit
}

func (a *app) tokensCmd() *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List operator tokens (admin)",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			toks, err := a.opClient().Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if toks == nil {
				toks = []api.Token{}
			}
			return a.emit(toks, func(w io.Writer) {
				row(w, "NAME", "ROLE", "SOURCE", "CREATED", "BY")
				for _, t := range toks {
					row(w, t.Name, t.Role, t.Source, dash(t.TimeCreated), dash(t.CreatedBy))
				}
			})
		}),
	}
	var role string
	create := &cobra.Command{
		Use:   "create NAME --role viewer|operator|admin",
		Short: "Create a token in the catalog (admin); its secret is printed once",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			tok, err := a.opClient().CreateToken(cmd.Context(), args[0], role)
			if err != nil {
				return err
			}
			return a.emit(tok, func(w io.Writer) {
				fmt.Fprintf(w, "token %s (%s) created; its secret is shown only now:\n%s\n", tok.Name, tok.Role, tok.Secret)
			})
		}),
	}
	create.Flags().StringVar(&role, "role", "", "viewer, operator or admin (required)")
	create.MarkFlagRequired("role")
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token of the catalog (admin); it stops working at once",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := a.opClient().RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.say("revoked token %s", args[0])
			return nil
		}),
	}
	fileLine := &cobra.Command{
		Use:   "file-line NAME ROLE",
		Short: "Make a new token for --tokens-file: prints the token and the line to add (nothing is sent)",
		Args:  exactArgs(2),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if _, err := authtoken.ParseRole(args[1]); err != nil {
				return usagef("%v", err)
			}
			secret := authtoken.NewSecret()
			line := fmt.Sprintf("%s %s %s", args[0], args[1], authtoken.HashSecret(secret))
			return a.emit(map[string]string{"name": args[0], "role": args[1], "secret": secret, "line": line}, func(w io.Writer) {
				fmt.Fprintf(w, "token (give it to its user; it is not kept anywhere):\n%s\nline for the tokens file:\n%s\n", secret, line)
			})
		}),
	}
	return group("tokens", "Manage operator tokens", ls, create, revoke, fileLine)
}
