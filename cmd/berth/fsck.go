package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/registry/fsck"
)

func newFsckCmd() *cobra.Command {
	var (
		configPath, data, format string
		opts                     fsck.Options
	)
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check every blob and metadata reference of a data directory",
		Long: `Check a data directory: every blob's content against its digest, every
manifest's bytes against its digest, every link and reference against the blob
store, and the database's own consistency. Exits 1 if a problem is found
(and not repaired). Garbage the collector will remove is counted, not reported
as a problem.

--repair corrects what the content proves: a recorded blob size that
disagrees with a blob whose content hashes to its digest (clients are told
the recorded size). It never deletes anything and cannot be combined with
--quick.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Repair && opts.SkipContent {
				return fmt.Errorf("--repair needs the content check: drop --quick")
			}
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("data") {
				cfg.Data = data
			}
			st, err := openOffline(cmd, cfg, "stop berth serve before checking its data directory")
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := fsck.Run(cmd.Context(), st.Meta, st.Blobs, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				if err := json.NewEncoder(out).Encode(rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintln(out, "problem:", p)
				}
				fmt.Fprintf(out, "checked %d blobs (%d bytes) and %d manifests: %d problems (%d repaired); garbage: %d stray files, %d stale records, %d unfinished uploads; %d sparse references\n",
					rep.Blobs, rep.Bytes, rep.Manifests, len(rep.Problems), len(rep.Problems)-rep.Unrepaired(),
					rep.StrayFiles, rep.StaleRecords, rep.UnfinishedIDs, rep.SparseReferences)
			}
			if rep.Unrepaired() > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default $BERTH_CONFIG)")
	cmd.Flags().StringVar(&data, "data", "", "data directory (default from the configuration)")
	cmd.Flags().BoolVar(&opts.SkipContent, "quick", false, "check sizes only; do not rehash blob content")
	cmd.Flags().BoolVar(&opts.Repair, "repair", false, "correct recorded blob sizes that disagree with verified content")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
