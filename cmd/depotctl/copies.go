package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"depot/server/api"
)

func (a *app) copiesCmd() *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use:   "copies [SHA256 [--wait 30s]]",
		Short: "List copy-from-depot jobs, or show (and wait for) one",
		Long: `Copies lists the daemon's running and recent copy-from-depot jobs,
newest first. With SHA256 it shows that artifact's job; --wait then
long-polls until the job leaves running, or the wait ends.`,
		Args: cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				if wait != 0 {
					return usagef("--wait needs a SHA256")
				}
				jobs, err := a.client().Copies(cmd.Context())
				if err != nil {
					return err
				}
				if jobs == nil {
					jobs = []api.CopyJob{}
				}
				return a.emit(jobs, func(w io.Writer) { copiesTable(w, jobs, time.Now()) })
			}
			d, err := parseDigest(args[0])
			if err != nil {
				return err
			}
			job, err := a.client().Copy(cmd.Context(), d, wait)
			if err != nil {
				return err
			}
			return a.emit(job, func(w io.Writer) { copiesTable(w, []api.CopyJob{job}, time.Now()) })
		}),
	}
	c.Flags().DurationVar(&wait, "wait", 0, "with SHA256: wait up to this long for the job to leave running")
	return c
}

func copiesTable(w io.Writer, jobs []api.CopyJob, now time.Time) {
	row(w, "SHA256", "STATE", "BYTES", "SOURCE", "STARTED", "TOOK", "ERROR")
	for _, j := range jobs {
		took := "-"
		if !j.Finished.IsZero() {
			took = j.Finished.Sub(j.Started).Round(time.Millisecond).String()
		} else if !j.Started.IsZero() {
			took = now.Sub(j.Started).Round(time.Second).String() + " so far"
		}
		row(w, j.Hash, j.State, formatBytes(j.Bytes), j.Source, formatTime(j.Started), took, oneLine(j.Error))
	}
}
