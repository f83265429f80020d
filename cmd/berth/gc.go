package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/pgdb"
	"berth.dev/berth/internal/registry/gc"
)

func newGCCmd() *cobra.Command {
	var (
		configPath, data, format string
		untagged                 bool
	)
	opts := gc.Options{}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs and manifests nothing references",
		Long: `Collect garbage in a data directory: manifests no tag reaches (with
--untagged), signatures, SBOMs and attestations whose subject is gone, blob
links no manifest needs, idle uploads, and blobs nothing links or references.
Content younger than --grace is spared, so pushes in flight survive.

A running berth serve holds its data directory and collects garbage itself
(gc.interval), online; send it SIGUSR1 to collect now. This command is for a
directory no server is using.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("data") {
				cfg.Data = data
			}
			if !cmd.Flags().Changed("grace") {
				opts.Grace = cfg.GC.Grace
			}
			if !cmd.Flags().Changed("upload-ttl") {
				opts.UploadTTL = cfg.Registry.UploadTTL
			}
			opts.Untagged = untagged || (!cmd.Flags().Changed("untagged") && cfg.GC.Untagged)
			opts.Logger = slog.Default()
			st, err := openOffline(cmd, cfg,
				"berth serve collects garbage itself; send it SIGUSR1 (kill -USR1 <pid>) to collect now")
			if err != nil {
				return err
			}
			defer st.Close()
			var rep gc.Report
			// One collection at a time among replicas sharing a database.
			err = st.Backends.Exclusive(cmd.Context(), pgdb.LockGC, func(ctx context.Context) error {
				rep, err = gc.Run(ctx, st.Meta, st.Blobs, opts)
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				return json.NewEncoder(out).Encode(rep)
			}
			fmt.Fprintf(out, "deleted %d manifests, %d tags, %d blob links, %d blobs (%d bytes), %d uploads, %d stray files, %d repositories in %dms\n",
				rep.Manifests, rep.Tags, rep.BlobLinks, rep.Blobs, rep.BytesFreed, rep.Uploads, rep.StrayFiles, rep.Repositories, rep.DurationMillis)
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default $BERTH_CONFIG)")
	cmd.Flags().StringVar(&data, "data", "", "data directory (default from the configuration)")
	cmd.Flags().BoolVar(&untagged, "untagged", false, "also delete manifests no tag reaches")
	cmd.Flags().DurationVar(&opts.Grace, "grace", 0, "spare content younger than this (default gc.grace, 1h)")
	cmd.Flags().DurationVar(&opts.UploadTTL, "upload-ttl", 0, "expire upload sessions idle longer than this (default registry.upload_ttl, 24h)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
