package main

import (
	"io"

	"github.com/spf13/cobra"

	"depot/server/api"
)

func (a *app) configCmd() *cobra.Command {
	get := &cobra.Command{
		Use:   "get",
		Short: "Show the daemon's artifact config",
		Args:  exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.client().GetConfig(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(cfg, func(w io.Writer) { configTable(w, cfg) })
		}),
	}

	var generation uint64
	var catalogID string
	set := &cobra.Command{
		Use:   "set --generation G [SHA256...]",
		Short: "Install an artifact config: the artifacts this daemon must keep",
		Long: `Set installs an artifact config at generation G. Generations only move
forward: a lower one, or the same one with another set, is refused. Every
artifact outside the config is then deleted by the daemon's reconciler.
A sled whose config names a catalog takes configs of that catalog only:
give its id with --catalog-id (depotctl config get shows it).
Normally the coordinator does this; set is for unmanaged sleds and repairs.`,
		Args: cobra.ArbitraryArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			cfg := api.Config{CatalogID: catalogID, Generation: generation, Artifacts: make([]api.Digest, 0, len(args))}
			for _, s := range args {
				d, err := parseDigest(s)
				if err != nil {
					return err
				}
				cfg.Artifacts = append(cfg.Artifacts, d)
			}
			if err := a.client().PutConfig(cmd.Context(), cfg); err != nil {
				return err
			}
			return a.emit(cfg, func(w io.Writer) { configTable(w, cfg) })
		}),
	}
	set.Flags().Uint64Var(&generation, "generation", 0, "the config's generation (required)")
	set.MarkFlagRequired("generation")
	set.Flags().StringVar(&catalogID, "catalog-id", "", "the catalog the config comes from (the sled's, for a repair)")
	return group("config", "Read or install a daemon's artifact config", get, set)
}

func configTable(w io.Writer, cfg api.Config) {
	catalog := cfg.CatalogID
	if catalog == "" {
		catalog = "-"
	}
	kv(w, "catalog", catalog, "generation", cfg.Generation, "artifacts", len(cfg.Artifacts))
	if len(cfg.Artifacts) > 0 {
		section(w, false, "SHA256")
		for _, d := range cfg.Artifacts {
			row(w, d)
		}
	}
}
