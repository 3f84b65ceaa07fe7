package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"depot/server/api"
)

// maxRootSize bounds a root.json read from disk; real ones are a few KiB.
const maxRootSize = 4 << 20

func (a *app) trustRootsCmd() *cobra.Command {
	add := &cobra.Command{
		Use:   "add FILE",
		Short: "Trust a root.json document (FILE, or - for stdin)",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			doc, err := a.readSmall(args[0], maxRootSize)
			if err != nil {
				return err
			}
			tr, err := a.opClient().AddTrustRoot(cmd.Context(), doc)
			if err != nil {
				return err
			}
			return a.emit(tr, func(w io.Writer) { trustRootTable(w, []api.TrustRoot{tr}) })
		}),
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List trusted roots",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			trs, err := a.opClient().TrustRoots(cmd.Context())
			if err != nil {
				return err
			}
			if trs == nil {
				trs = []api.TrustRoot{}
			}
			return a.emit(trs, func(w io.Writer) { trustRootTable(w, trs) })
		}),
	}
	rm := &cobra.Command{
		Use:   "rm ID",
		Short: "Stop trusting a root (ID is the UUID that ls shows)",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := a.opClient().DeleteTrustRoot(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.say("removed trust root %s", args[0])
			return nil
		}),
	}
	return group("trust-roots", "Manage the trusted TUF root.json documents", add, ls, rm)
}

func trustRootTable(w io.Writer, trs []api.TrustRoot) {
	row(w, "ID", "SHA256", "ROOT VERSION", "EXPIRES", "ADDED", "SOURCE")
	for _, tr := range trs {
		version, expires := rootSummary(tr.Root)
		sum := tr.SHA256
		if len(sum) > 12 {
			sum = sum[:12]
		}
		row(w, tr.ID, dash(sum), version, expires, formatTime(tr.TimeCreated), dash(tr.Source))
	}
}

// rootSummary reads the version and expiry of a root.json, or "-".
func rootSummary(doc json.RawMessage) (version, expires string) {
	var r struct {
		Signed struct {
			Version int64     `json:"version"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if json.Unmarshal(doc, &r) != nil || r.Signed.Version == 0 {
		return "-", "-"
	}
	return fmt.Sprint(r.Signed.Version), formatTime(r.Signed.Expires)
}

// readSmall reads a small file (or stdin for "-"), refusing one over max.
func (a *app) readSmall(path string, max int64) ([]byte, error) {
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is over %s: not a root.json", path, formatBytes(max))
	}
	return b, nil
}
