package main

import (
	"io"

	"github.com/spf13/cobra"

	"depot/server/api"
)

func (a *app) sledsCmd() *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the coordinator's sled registry",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			sleds, err := a.opClient().Sleds(cmd.Context())
			if err != nil {
				return err
			}
			if sleds == nil {
				sleds = []api.SledRecord{}
			}
			return a.emit(sleds, func(w io.Writer) { sledTable(w, sleds) })
		}),
	}

	var control, depotURL string
	add := &cobra.Command{
		Use:   "add ID --control URL [--depot URL]",
		Short: "Add (or update) a sled",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			rec, err := a.opClient().PutSled(cmd.Context(), api.SledRecord{
				ID: args[0], ControlURL: control, DepotURL: depotURL, State: api.SledInService,
			})
			if err != nil {
				return err
			}
			return a.emit(rec, func(w io.Writer) { sledTable(w, []api.SledRecord{rec}) })
		}),
	}
	add.Flags().StringVar(&control, "control", "", "the sled's sled API base URL (its --listen)")
	add.Flags().StringVar(&depotURL, "depot", "", "the sled's repo-depot base URL, scheme://host:port (without it the sled is never a copy source: a sled's own report is not trusted)")
	add.MarkFlagRequired("control")

	rm := &cobra.Command{
		Use:   "rm ID",
		Short: "Expunge a sled: it is no longer counted or contacted, and its id cannot return",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			rec, err := a.opClient().ExpungeSled(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(rec, func(w io.Writer) { sledTable(w, []api.SledRecord{rec}) })
		}),
	}
	return group("sleds", "Manage the sleds the coordinator replicates to", ls, add, rm)
}

func sledTable(w io.Writer, sleds []api.SledRecord) {
	row(w, "ID", "STATE", "CONTROL URL", "DEPOT URL", "ADDED")
	for _, s := range sleds {
		row(w, s.ID, s.State, s.ControlURL, dash(s.DepotURL), formatTime(s.Added))
	}
}
