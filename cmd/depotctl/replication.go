package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"depot/server/api"
)

// recentShown is how many recent requests the table shows without --all.
const recentShown = 20

func (a *app) replicationCmd() *cobra.Command {
	var (
		all, failed bool
		wait        time.Duration
	)
	c := &cobra.Command{
		Use:   "replication",
		Short: "Show the coordinator's replication: counters, recent requests, sleds",
		Long: `Replication shows the coordinator's replication status: the last
activation and lifetime counters per operation, the state of each sled, and
the most recent requests with their errors (the last 20; --all for every
one kept, --failed for failed ones only). --wait long-polls: it answers at
the next change, or after the wait. "depotctl replication activate" starts
an activation now.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			st, err := a.opClient().ReplicationStatus(cmd.Context(), wait)
			if err != nil {
				return err
			}
			return a.emit(st, func(w io.Writer) { replicationTable(w, st, all, failed, time.Now()) })
		}),
	}
	f := c.Flags()
	f.BoolVar(&all, "all", false, "show every recent request kept, not only the last 20")
	f.BoolVar(&failed, "failed", false, "show only the recent requests that failed")
	f.DurationVar(&wait, "wait", 0, "long-poll: answer at the next change of the status, or after this long")

	c.AddCommand(&cobra.Command{
		Use:   "activate",
		Short: "Start a replication activation now",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := a.opClient().ActivateReplication(cmd.Context()); err != nil {
				return err
			}
			a.say("replication activated")
			return nil
		}),
	})
	return c
}

func replicationTable(w io.Writer, st api.ReplicationStatus, all, failed bool, now time.Time) {
	running := "no"
	if st.Running {
		running = "yes"
	}
	leads := "no (another coordinator of the catalog runs activations)"
	if st.Leading {
		leads = "yes"
	}
	kv(w,
		"coordinator", st.Coordinator,
		"leads replication", leads,
		"generation", st.Generation,
		"activations", st.Activations,
		"running now", running,
	)
	if l := st.Last; l != nil {
		took := "-"
		if !l.Finished.IsZero() {
			took = l.Finished.Sub(l.Started).Round(time.Millisecond).String()
		}
		kv(w,
			"last activation", fmt.Sprintf("%s (%s), took %s", formatTime(l.Started), formatAge(l.Started, now), took),
			"  generation", l.Generation,
			"  sleds", l.Sleds,
			"  planned requests", l.Planned,
			"  converged", yesNo(l.Converged),
			"  error", oneLine(l.Error),
		)
	} else {
		kv(w, "last activation", "none yet")
	}

	section(w, false, "COUNTERS")
	row(w, "OP", "LAST OK", "LAST ERR", "LIFETIME OK", "LIFETIME ERR")
	var last api.Counters
	if st.Last != nil {
		last = st.Last.Counters
	}
	// The known operations in pipeline order, then any others by name.
	ops := []string{api.OpGetConfig, api.OpPutConfig, api.OpList, api.OpPut, api.OpCopy}
	for _, op := range slices.Sorted(maps.Keys(st.Lifetime)) {
		if !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	for _, op := range ops {
		var l, t api.OpCounts
		if c := last[op]; c != nil {
			l = *c
		}
		if c := st.Lifetime[op]; c != nil {
			t = *c
		}
		row(w, op, l.OK, l.Err, t.OK, t.Err)
	}

	section(w, false, "SLEDS")
	row(w, "ID", "STATE", "MIRRORS", "ARTIFACTS", "LAST INVENTORY", "LAST ERROR")
	for _, s := range st.Sleds {
		lastErr := oneLine(s.LastError)
		if s.LastError != "" {
			lastErr = formatTime(s.LastErrorTime) + " " + lastErr
		}
		row(w, s.ID, s.State, s.Mirrors, s.Artifacts, formatAge(s.LastInventory, now), lastErr)
	}

	recent := st.Recent
	what := "REQUESTS"
	if failed {
		what = "FAILED REQUESTS"
		recent = slices.DeleteFunc(slices.Clone(recent), func(r api.RequestRecord) bool { return r.Error == "" })
	}
	title := fmt.Sprintf("RECENT %s (all %d, oldest first)", what, len(recent))
	if !all && len(recent) > recentShown {
		title = fmt.Sprintf("RECENT %s (last %d of %d, oldest first; --all for every one)", what, recentShown, len(recent))
		recent = recent[len(recent)-recentShown:]
	}
	section(w, false, title)
	row(w, "TIME", "SLED", "OP", "SHA256", "SOURCE", "GEN", "DURATION", "ERROR")
	for _, r := range recent {
		hash := "-"
		if r.Hash != nil {
			hash = short(r.Hash.String())
		}
		row(w, formatTime(r.Time), r.Sled, r.Op, hash, dash(r.Source), r.Generation,
			(time.Duration(r.DurationMS) * time.Millisecond).String(), oneLine(r.Error))
	}
}
