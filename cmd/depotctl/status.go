package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"depot/server/api"
	"depot/server/client"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's mirrors, health, scrub, copies and reconciler",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			st, err := a.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(st, func(w io.Writer) { statusTable(w, st) })
		}),
	}
}

func (a *app) scrubCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scrub",
		Short: "Start a scrub (re-hash every copy, repair from good ones) and show its status",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			st, err := a.client().StartScrub(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(st, func(w io.Writer) { scrubTable(w, st) })
		}),
	}
}

func statusTable(w io.Writer, st client.StatusResponse) {
	gen := "none (unmanaged)"
	if st.Generation != nil {
		gen = fmt.Sprint(*st.Generation)
	}
	kv(w,
		"version", dash(st.Version),
		"uptime", (time.Duration(st.UptimeSeconds) * time.Second).String(),
		"health", health(st.Mirrors),
		"generation", gen,
		"depot url", dash(st.DepotURL),
	)

	section(w, false, "MIRRORS")
	row(w, "PATH", "HEALTHY", "ARTIFACTS", "SIZE", "FREE", "LAST ERROR")
	for _, m := range st.Mirrors {
		lastErr := oneLine(m.LastError)
		if m.LastError != "" {
			lastErr = formatTime(m.LastErrorTime) + " " + lastErr
		}
		row(w, m.Path, yesNo(m.Healthy), m.Artifacts, formatBytes(m.Bytes), formatBytes(m.Free), lastErr)
	}

	section(w, false, "SCRUB")
	scrubTable(w, st.Scrub)

	section(w, false, "COPIES")
	copyCountsTable(w, st.Copies)

	section(w, false, "RECONCILER")
	reconcilerTable(w, st.Reconciler)
}

// health sums up the mirrors: "ok (2 of 2 mirrors healthy)",
// "DEGRADED (1 of 2 ...)", "DOWN (...)".
func health(ms []api.MirrorStatus) string {
	ok := 0
	for _, m := range ms {
		if m.Healthy {
			ok++
		}
	}
	word := "ok"
	switch {
	case ok == 0:
		word = "DOWN"
	case ok < len(ms):
		word = "DEGRADED"
	}
	return fmt.Sprintf("%s (%d of %d mirrors healthy)", word, ok, len(ms))
}

func scrubTable(w io.Writer, s api.ScrubStatus) {
	state := "idle"
	if s.Running {
		state = "running"
		if !s.Verify {
			state = "running (refill)"
		}
	}
	row(w, "STATE", "STARTED", "FINISHED", "CHECKED", "BYTES", "CORRUPT", "MISSING", "REPAIRED", "FAILED", "LAST ERROR")
	row(w, state, formatTime(s.Started), formatTime(s.Finished), fmt.Sprintf("%d/%d", s.Checked, s.Artifacts),
		formatBytes(s.Bytes), s.Corrupt, s.Missing, s.Repaired, s.Failed, oneLine(s.LastError))
	fmt.Fprintf(w, "since start-up: %d passes, %d corrupt, %d repaired, %d failed\n", s.Passes, s.TotalCorrupt, s.TotalRepaired, s.TotalFailed)
}

func copyCountsTable(w io.Writer, c api.CopyCounts) {
	row(w, "RUNNING", "LIMIT", "QUEUED", "QUEUE LIMIT", "SUCCEEDED", "FAILED", "REJECTED")
	row(w, c.Running, c.Limit, c.Queued, c.QueueLimit, c.Succeeded, c.Failed, c.Rejected)
}

func reconcilerTable(w io.Writer, r api.ReconcileStatus) {
	state := "idle"
	if r.Running {
		state = "running"
	}
	gen := "-"
	if r.Generation != nil {
		gen = fmt.Sprint(*r.Generation)
	}
	row(w, "STATE", "LAST STARTED", "LAST FINISHED", "GENERATION", "FOUND", "DELETED", "SKIPPED", "FAILED", "LAST ERROR")
	row(w, state, formatTime(r.LastStarted), formatTime(r.LastFinished), gen, r.Found, r.Deleted, r.Skipped, r.Failed, oneLine(r.LastError))
	fmt.Fprintf(w, "since start-up: %d passes, %d deleted, %d failed\n", r.Passes, r.TotalDeleted, r.TotalFailed)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}
