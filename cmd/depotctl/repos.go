package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"

	"depot/server/api"
)

func (a *app) reposCmd() *cobra.Command {
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List uploaded repositories, oldest first",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			repos, err := a.opClient().Repos(cmd.Context())
			if err != nil {
				return err
			}
			if repos == nil {
				repos = []api.Repo{}
			}
			return a.emit(repos, func(w io.Writer) {
				row(w, "SYSTEM VERSION", "ARTIFACTS", "SIZE", "UPLOADED", "FILE", "ARCHIVE SHA256")
				for _, r := range repos {
					var size int64
					for _, art := range r.Artifacts {
						size += art.Size
					}
					row(w, r.SystemVersion, len(r.Artifacts), formatBytes(size), formatTime(r.TimeCreated), dash(r.FileName), r.Hash)
				}
			})
		}),
	}
	show := &cobra.Command{
		Use:   "show VERSION",
		Short: "Show a repository, its artifacts and the sleds holding each",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			p, err := a.opClient().Repo(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			return a.emit(p, func(w io.Writer) {
				kv(w,
					"system version", p.SystemVersion,
					"state", p.State,
					"replication", describeProgress(p),
					"file", dash(p.FileName),
					"archive sha256", p.Hash,
					"uploaded", formatTime(p.TimeCreated),
				)
				section(w, false, "ARTIFACTS")
				row(w, "KIND", "NAME", "VERSION", "SIZE", "SHA256", "SLEDS")
				for _, art := range p.Artifacts {
					sleds := "-"
					if len(art.Sleds) > 0 {
						sleds = strings.Join(art.Sleds, ",")
					}
					row(w, art.Kind, art.Name, art.Version, formatBytes(art.Size), art.Hash, sleds)
				}
			})
		}),
	}
	rm := &cobra.Command{
		Use:   "rm VERSION",
		Short: "Remove a repository; artifacts no other repository uses leave every sled",
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := a.opClient().DeleteRepo(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.say("removed repository %s", args[0])
			return nil
		}),
	}
	return group("repos", "Manage uploaded TUF repositories", ls, show, rm)
}
