package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/bundle"
	"berth.dev/berth/internal/vulndb/fetch"
	"berth.dev/berth/internal/vulndb/ociartifact"
	"berth.dev/berth/internal/vulndb/update"
)

func newDBCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the local vulnerability database",
		Long: `Manage the local vulnerability database that berth scan matches against.

The database lives in --db-dir, else $BERTH_DB_DIR, else berth/db in the
user's cache directory.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "db-dir", "", "database directory (default $BERTH_DB_DIR or <user cache dir>/berth/db)")
	resolve := func() (string, error) {
		if dir != "" {
			return dir, nil
		}
		return vulndb.DefaultDir()
	}
	cmd.AddCommand(newDBUpdateCmd(resolve), newDBStatusCmd(resolve), newDBExportCmd(resolve),
		newDBImportCmd(resolve), newDBPushCmd(resolve))
	return cmd
}

func newDBUpdateCmd(resolve func() (string, error)) *cobra.Command {
	var sources []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Download vulnerability records and rebuild the database",
		Long: `Download vulnerability records and rebuild the database.

--source may be repeated; without it, the sources in $BERTH_DB_SOURCES
(whitespace-separated), else the OSV feed at ` + update.DefaultSources[0] + `.
  URL or PATH, osv:URL|PATH         an OSV bulk feed (ecosystems.txt + <ECOSYSTEM>/all.zip),
                                     or a folder of <ECOSYSTEM>/all.zip; append #npm,PyPI
                                     to import only those ecosystems
  debian-tracker:[URL|PATH]         the Debian security tracker (data/DSA/list, data/DLA/list)
  alpine-secdb:[URL|PATH]           the Alpine secdb in JSON (<branch>/<repo>.json)
  nodejs-wg:URL|PATH                the Node.js security WG vuln.zip (npm advisories)
  oci://REF                         a database pushed with 'berth db push' (alone)

Downloads are conditional (a 304 reuses the previous copy) and verified; the
new database replaces the old one only if every source succeeded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := resolve()
			if err != nil {
				return err
			}
			opts := update.Options{Dir: dir, Sources: dbSources(sources), Timeout: timeout}
			pr := newProgress(cmd)
			showUpdateProgress(pr, &opts)
			info, err := update.Run(cmd.Context(), opts)
			pr.done()
			if err != nil {
				return err
			}
			skipped := 0
			for _, s := range info.Sources {
				skipped += s.Skipped
			}
			fmt.Fprintf(cmd.OutOrStdout(), "updated %s: %d records in %d packages", vulndb.Path(dir), info.Records, info.Packages)
			if skipped > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), " (%d records skipped: see 'berth db status')", skipped)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sources, "source", nil, "vulnerability source (repeatable; see above)")
	cmd.Flags().DurationVar(&timeout, "timeout", fetch.DefaultTimeout, "give up on a source that sends nothing for this long")
	return cmd
}

// dbSourcesEnv names the sources an update reads when given none (a
// mirror, an air-gapped folder), so that every command that builds the
// database, and every script, finds them without flags.
const dbSourcesEnv = "BERTH_DB_SOURCES"

// dbSources is what an update reads: the --source flags, else
// $BERTH_DB_SOURCES, else nil (update.DefaultSources).
func dbSources(flags []string) []string {
	if len(flags) > 0 {
		return flags
	}
	return strings.Fields(os.Getenv(dbSourcesEnv))
}

// showUpdateProgress draws a database update on pr: which source of how
// many is loading, and each download's bytes.
func showUpdateProgress(pr *progress, opts *update.Options) {
	if pr == nil {
		return
	}
	// The bar shows what the update's info lines say; warnings still
	// print.
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var current string
	opts.OnSource = func(name string, i, n int) {
		current = fmt.Sprintf("[%d/%d] %s", i, n, name)
		pr.spin(current)
	}
	opts.OnDownload = func(url string, size int64) func(int64) {
		return pr.bytes(current+": "+path.Base(url), size)
	}
}

func newDBStatusCmd(resolve func() (string, error)) *cobra.Command {
	var maxAge time.Duration
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the database's sources, record counts, skipped records and age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := resolve()
			if err != nil {
				return err
			}
			db, err := vulndb.Open(dir)
			if err != nil {
				if errors.Is(err, vulndb.ErrNoDB) {
					return fmt.Errorf("%s", vulndb.Staleness(dir, maxAge, time.Now()))
				}
				return err
			}
			defer db.Close()
			info := db.Info()
			switch format {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			case "text":
				printDBStatus(cmd.OutOrStdout(), vulndb.Path(dir), info, time.Now())
			default:
				return fmt.Errorf("--format %q: want text or json", format)
			}
			if w := db.StaleWarning(maxAge, time.Now()); w != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&maxAge, "max-age", vulndb.DefaultMaxAge, "warn when the last update is older than this")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func printDBStatus(w io.Writer, path string, info vulndb.Info, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Database:\t%s\n", path)
	fmt.Fprintf(tw, "Updated:\t%s (%s ago)\n", info.UpdatedAt.Format(time.RFC3339), vulndb.FormatAge(now.Sub(info.UpdatedAt)))
	fmt.Fprintf(tw, "Records:\t%d in %d packages\n", info.Records, info.Packages)
	tw.Flush()

	fmt.Fprintln(w, "\nEcosystems:")
	ecos := make([]string, 0, len(info.Ecosystems))
	for e := range info.Ecosystems {
		ecos = append(ecos, e)
	}
	sort.Strings(ecos)
	for _, e := range ecos {
		fmt.Fprintf(tw, "  %s\t%d\n", e, info.Ecosystems[e])
	}
	tw.Flush()

	fmt.Fprintln(w, "\nSources:")
	for _, s := range info.Sources {
		fmt.Fprintf(w, "  %s\n", s.Name)
		fmt.Fprintf(tw, "    records\t%d\n    duplicates\t%d\n    skipped\t%d\n", s.Records, s.Duplicates, s.Skipped)
		tw.Flush()
		for _, r := range s.Reasons {
			ex := ""
			if len(r.Examples) > 0 {
				ex = "e.g. " + strings.Join(r.Examples, ", ")
			}
			fmt.Fprintf(tw, "      %d\t%s\t%s\n", r.Count, r.Reason, ex)
		}
		tw.Flush()
	}
}

func newDBExportCmd(resolve func() (string, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "export FILE",
		Short: "Write the database to one verified file (- for stdout) for 'berth db import'",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := resolve()
			if err != nil {
				return err
			}
			if args[0] == "-" {
				_, err := bundle.Export(cmd.Context(), dir, cmd.OutOrStdout(), time.Now())
				return err
			}
			return writeDBExport(cmd, dir, args[0])
		},
	}
}

// writeDBExport writes the bundle (see writeOutput: beside its destination
// and renamed, so an interrupted export never leaves a file that looks
// complete; straight into a device or FIFO).
func writeDBExport(cmd *cobra.Command, dir, dest string) error {
	var m *bundle.Manifest
	err := writeOutput(dest, outputFile{Perm: 0o644}, func(w io.Writer) error {
		var err error
		m, err = bundle.Export(cmd.Context(), dir, w, time.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "exported %d records to %s (database sha256 %s)\n", m.Info.Records, dest, m.Files[0].SHA256)
	return nil
}

func newDBImportCmd(resolve func() (string, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Verify a file written by 'berth db export' (- for stdin) and make it the database",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := resolve()
			if err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			ws, err := vulndb.OpenWorkspace(dir, 10*time.Second)
			if err != nil {
				return err
			}
			defer ws.Close()
			info, err := bundle.Import(cmd.Context(), r, ws)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d records into %s\n", info.Records, vulndb.Path(dir))
			return nil
		},
	}
}

func newDBPushCmd(resolve func() (string, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "push REF",
		Short: "Push the database to a registry as an OCI artifact (" + ociartifact.ArtifactType + ")",
		Long: `Push the database to a registry as an OCI artifact with artifactType
` + ociartifact.ArtifactType + `; 'berth db update --source oci://REF' installs it.
Registries on loopback or private addresses are reached over plain HTTP.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := resolve()
			if err != nil {
				return err
			}
			pr := newProgress(cmd)
			pr.spin("pushing the database to " + args[0])
			d, err := ociartifact.Push(cmd.Context(), dir, args[0], time.Now())
			pr.done()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s@%s\n", args[0], d)
			return nil
		},
	}
}
