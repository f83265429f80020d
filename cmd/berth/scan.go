package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/match/ignore"
	"berth.dev/berth/internal/report"
	"berth.dev/berth/internal/scan"
	"berth.dev/berth/internal/vex"
	"berth.dev/berth/internal/vulndb"
)

// exitDB is berth scan's exit code when there is no usable vulnerability
// database, or a stale one with --fail-on-stale-db. Every other error
// exits 1 (see main); docs/scan.md lists the codes for CI gates.
const exitDB = 3

func newScanCmd() *cobra.Command {
	var (
		format, output, platform, cacheDir, dbDir string
		severity, ignoreFile, input, fromReport   string
		vexFiles                                  []string
		insecure, noCache, ignoreUnfixed          bool
		failOnStale, quiet, allowUncovered        bool
		skipDBUpdate, offline                     bool
		exitCode                                  int
		maxAge                                    = ageFlag(vulndb.DefaultMaxAge)
		att                                       attestFlags
		creds                                     registryCreds
		scanners                                  scannerFlags
	)
	cmd := &cobra.Command{
		Use:   "scan IMAGE | scan --input ARCHIVE | scan sbom:FILE | scan --from-report REPORT.json",
		Short: "Find the known vulnerabilities of the packages inside an image",
		Long: `Find the known vulnerabilities of the packages inside an image.

IMAGE is named as for 'berth sbom' (a registry reference, oci-archive:PATH,
docker-archive:PATH, oci-dir:PATH, dir:PATH). --input ARCHIVE reads an image
tarball (docker save, crane pull, skopeo's oci-archive: which one is read
from the file), as Trivy's --input does. sbom:FILE scans the packages a
CycloneDX or SPDX JSON document lists (berth's own, syft's, Trivy's), as
'trivy sbom' does. --from-report REPORT.json matches a stored report (berth
scan --format json) or inventory (berth sbom --format json) against the
current database without reading the image again. Layer results are cached
in --cache-dir.

The vulnerability database is the one 'berth db update' keeps in --db-dir.
When there is none at all, berth scan builds it first from the default
sources ($BERTH_DB_SOURCES, else osv.dev), as 'berth db update' would;
--skip-db-update or --offline stop with exit code 3 instead. An existing
database is never updated by a scan.

--scanners picks what to look for: vuln (known vulnerabilities), secret
(credentials in every layer and the config), misconfig (image and
Dockerfile rules), license (classes, --license-allow/--license-deny);
default vuln,secret. Without vuln no database is needed. See
docs/secrets.md.

Registry credentials are those 'berth login' (or docker login) stored, or
--username with --password, --password-stdin or BERTH_PASSWORD, or
--registry-token, for the image's registry only.

Filters: --severity keeps the listed ratings (HIGH,CRITICAL) or a rating and
above (HIGH+); UNKNOWN only when named; --ignore-unfixed drops findings
without a fixed version; the ignore file (--ignorefile, else the first of
.berthignore, .trivyignore, .trivyignore.yaml in the working directory) and
--vex documents suppress findings, with the reason kept in the report.

Exit codes: 0 when done (also with findings unless --exit-code is set); the
--exit-code value when findings remain after filtering; 1 for an operational
error (bad flags, unreadable image or input); 3 when the vulnerability
database is missing or unusable, or older than --db-max-age with
--fail-on-stale-db, and, with --exit-code, when packages of an OS release the
database does not cover could not be judged (--allow-uncovered lets those
pass). See docs/scan.md.

-q prints nothing but the report (errors still go to standard error).

--attest --key KEY also signs the report (the filtered findings, as
--format json writes them) as cosign's vulnerability scan record (predicate
type https://cosign.sigstore.dev/attestation/vuln/v1) and attaches it to the
image: the reference is resolved to a digest once, that digest is scanned,
and the attestation is about it. Registry images only.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			// info is where everything but errors goes: nowhere with -q.
			info := stderr
			if quiet {
				info = io.Discard
				cmd.SetErr(io.Discard)
				slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})))
			}
			sources := 0
			for _, set := range []bool{len(args) > 0, input != "", fromReport != ""} {
				if set {
					sources++
				}
			}
			switch {
			case sources == 0:
				return errors.New("scan needs an IMAGE, --input ARCHIVE, sbom:FILE or --from-report REPORT.json")
			case sources > 1:
				return errors.New("give one of an IMAGE, --input ARCHIVE or --from-report REPORT.json, not several")
			case fromReport != "" && att.on:
				return errors.New("--attest needs an IMAGE: a stored report is not a scan of the image as it is now")
			}
			sbomFile, isSBOM := "", false
			if len(args) > 0 {
				sbomFile, isSBOM = strings.CutPrefix(args[0], "sbom:")
				if isSBOM && att.on {
					return errors.New("--attest needs an IMAGE: an SBOM file is not a scan of the image as it is now")
				}
			}
			if input != "" {
				src, err := inputArchive(input)
				if err != nil {
					return err
				}
				args = []string{src}
			}
			if err := att.check(cmd); err != nil {
				return err
			}
			auth, err := creds.authenticator(cmd)
			if err != nil {
				return err
			}
			if err := scanners.parse(); err != nil {
				return err
			}
			if att.on && !scanners.wants(scan.ScannerVuln) {
				return errors.New("--attest attests a vulnerability scan: --scanners must include vuln")
			}
			var pending *pendingAttestation
			if att.on {
				if pending, err = att.prepare(cmd, args[0], insecure); err != nil {
					return err
				}
			}
			if _, err := report.LookupReport(format); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			if exitCode < 0 || exitCode > 125 {
				return fmt.Errorf("--exit-code %d: want 0 to 125", exitCode)
			}
			filter, err := scan.SeverityFilter(severity)
			if err != nil {
				return fmt.Errorf("--severity: %w", err)
			}
			filter.IgnoreUnfixed = ignoreUnfixed
			var ignorePath string
			if filter.Ignore, ignorePath, err = loadIgnoreFile(cmd, ignoreFile); err != nil {
				return err
			}
			if len(vexFiles) > 0 {
				if filter.VEX, err = vex.Load(vexFiles...); err != nil {
					return err
				}
			}

			engine := &scan.Engine{}
			if err := scanners.configure(engine); err != nil {
				return err
			}
			var db *vulndb.DB
			if scanners.wants(scan.ScannerVuln) {
				if dbDir == "" {
					if dbDir, err = vulndb.DefaultDir(); err != nil {
						return err
					}
				}
				db, err = vulndb.Open(dbDir)
				if errors.Is(err, vulndb.ErrNoDB) && !skipDBUpdate && !offline {
					db, err = buildFirstDB(cmd, info, dbDir, quiet)
				}
				if err != nil {
					fmt.Fprintln(stderr, "berth:", err)
					return exitError{code: exitDB}
				}
				defer db.Close()
				if w := db.StaleWarning(time.Duration(maxAge), time.Now()); w != "" {
					if failOnStale {
						fmt.Fprintln(stderr, "berth:", w)
						return exitError{code: exitDB}
					}
					fmt.Fprintln(info, "warning:", w)
				}
				engine.Matcher = match.New(db)
			}
			if quiet {
				engine.Logger = slog.New(slog.DiscardHandler)
			}
			var full *match.Report
			var started, finished time.Time
			switch {
			case fromReport != "":
				stored, err := readStoredReport("--from-report", fromReport)
				if err != nil {
					return err
				}
				if full, err = engine.Rematch(cmd.Context(), stored); err != nil {
					return err
				}
			case isSBOM:
				// An SBOM lists packages: what is matched against the
				// database or a license policy. Secrets and
				// misconfigurations need the image.
				var kept []string
				for _, n := range []string{scan.ScannerVuln, scan.ScannerLicense} {
					if scanners.wants(n) {
						kept = append(kept, n)
					}
				}
				if len(kept) == 0 {
					return errors.New("sbom:FILE lists packages: --scanners needs vuln or license (secrets and misconfigurations need the image)")
				}
				inv, err := readSBOMFile(sbomFile)
				if err != nil {
					return err
				}
				if full, err = engine.Match(cmd.Context(), inv); err != nil {
					return err
				}
				full.Scanners = kept
				if engine.Licenses != nil {
					full.Licenses = licensepolicy.Check(&full.Inventory, *engine.Licenses)
				}
				full.Warnings = append(slices.Clone(inv.Warnings), full.Warnings...)
			default:
				s := &inventory.Scanner{Analyzers: analyzers.All()}
				if !noCache {
					if cacheDir == "" {
						if cacheDir, err = inventory.DefaultCacheDir(); err != nil {
							return err
						}
					}
					if s.Cache, err = inventory.OpenCache(cacheDir); err != nil {
						return err
					}
				}
				src := args[0]
				if pending != nil {
					if err := pending.resolve(); err != nil {
						return err
					}
					src = pending.source()
				}
				finish := func() {}
				if !quiet && progressEnabled(cmd) {
					finish = showProgress(s)
				}
				engine.Inventory = s
				started = time.Now()
				full, err = engine.Scan(cmd.Context(), src, image.Options{Platform: platform, Insecure: insecure, Auth: auth})
				finished = time.Now()
				finish()
				if err != nil {
					return err
				}
				full.Inventory.Source = args[0]
				if input != "" {
					full.Inventory.Source = input
				}
			}

			shown := filter.Apply(full)
			for _, w := range shown.Warnings {
				fmt.Fprintln(info, "warning:", w)
			}
			if err := writeSBOMOutput(output, func(w io.Writer) error {
				return report.EncodeReport(w, format, shown, report.Options{ToolVersion: version})
			}); err != nil {
				return err
			}
			summary := scan.Summarize(full, shown)
			summary.Unjudged = engine.Unjudged(&full.Inventory)
			fmt.Fprintln(info, summary)
			if pending != nil {
				info := db.Info()
				sources := make([]string, len(info.Sources))
				for i, s := range info.Sources {
					sources[i] = s.Name
				}
				predicate, err := scan.VulnPredicate(shown, scan.PredicateInput{ToolVersion: version, DBSources: sources,
					DBUpdatedAt: info.UpdatedAt, Parameters: scanParameters(cmd, ignorePath), Started: started, Finished: finished})
				if err != nil {
					return fmt.Errorf("--attest: %w", err)
				}
				if err := pending.finish(full.Inventory.Digest, "vuln", predicate); err != nil {
					return err
				}
			}
			// A gate must not pass what the database could not judge: a
			// Debian 12 image against a database without Debian 12 records
			// looks clean.
			if u := summary.Unjudged; exitCode != 0 && u.Packages > 0 && !allowUncovered {
				release := "their OS release is unknown"
				if u.Release != "" {
					release = "the database holds no " + u.Release + " records"
				}
				fmt.Fprintf(stderr, "berth: %d packages could not be judged (%s): the gate fails; add a source that covers the release, or --allow-uncovered\n", u.Packages, release)
				return exitError{code: exitDB}
			}
			if exitCode != 0 && (len(shown.Findings) > 0 || failing(shown)) {
				return exitError{code: exitCode}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "table", "output format: "+strings.Join(report.ReportFormatNames(), ", "))
	f.StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	f.StringVar(&input, "input", "", "scan an image tarball (docker save, crane pull, oci-archive), as Trivy's --input")
	f.StringVar(&fromReport, "from-report", "", "rematch a stored report or inventory JSON instead of reading an image")
	f.StringVar(&severity, "severity", "", "ratings to report: a list (HIGH,CRITICAL) or a threshold (HIGH+); UNKNOWN only when named; default all")
	f.BoolVar(&ignoreUnfixed, "ignore-unfixed", false, "leave out vulnerabilities without a fixed version")
	f.IntVar(&exitCode, "exit-code", 0, "exit with this code when vulnerabilities remain after filtering (and 3 when packages could not be judged)")
	f.BoolVar(&allowUncovered, "allow-uncovered", false, "with --exit-code: let packages of an OS release the database does not cover pass the gate")
	f.StringVar(&ignoreFile, "ignorefile", "", "ignore file (.trivyignore text or YAML); default: the first of "+strings.Join(scan.DefaultIgnoreFiles, ", ")+" in the working directory; --ignorefile= for none")
	f.StringArrayVar(&vexFiles, "vex", nil, "OpenVEX or CSAF VEX document whose statements suppress or annotate findings (repeatable)")
	f.StringVar(&dbDir, "db-dir", "", "vulnerability database directory (default $BERTH_DB_DIR or <user cache dir>/berth/db)")
	f.Var(&maxAge, "db-max-age", "warn when the database was last updated longer ago than this (e.g. 7d, 36h)")
	f.BoolVar(&failOnStale, "fail-on-stale-db", false, "exit 3 instead of warning when the database is older than --db-max-age")
	f.BoolVar(&skipDBUpdate, "skip-db-update", false, "never build the database: without one, exit 3 (a scan never updates an existing one)")
	f.BoolVar(&offline, "offline", false, "download nothing for the database: without one, exit 3 (as --skip-db-update)")
	f.StringVar(&cacheDir, "cache-dir", "", "layer cache directory (default $BERTH_CACHE_DIR or <user cache dir>/berth)")
	f.BoolVar(&noCache, "no-cache", false, "neither read nor write the layer cache")
	f.StringVar(&platform, "platform", image.DefaultPlatform, "platform to pick from a multi-arch image, os/arch[/variant]")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP and unverified TLS for registries off the loopback interface")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing but the report (no summary, warnings or progress; errors still)")
	creds.add(cmd)
	att.add(cmd, "the report")
	scanners.add(cmd)
	return cmd
}

// scanParameters lists the flags that shaped the attested result, as
// --name=value: what a reader needs to know was filtered out. Paths of
// keys, caches and databases are left out; they say nothing about the
// result.
func scanParameters(cmd *cobra.Command, ignorePath string) []string {
	var out []string
	for _, n := range []string{"platform", "severity", "ignore-unfixed"} {
		if fl := cmd.Flags().Lookup(n); fl.Changed {
			out = append(out, "--"+n+"="+fl.Value.String())
		}
	}
	if ignorePath != "" {
		out = append(out, "--ignorefile="+ignorePath)
	}
	vexFiles, _ := cmd.Flags().GetStringArray("vex")
	for _, v := range vexFiles {
		out = append(out, "--vex="+v)
	}
	return out
}

// loadIgnoreFile reads --ignorefile, or the default ignore file of the
// working directory when the flag was not given, and says which file it
// read (on the command's standard error, nowhere with -q). A named file must exist; `--ignorefile=` turns the default off.
func loadIgnoreFile(cmd *cobra.Command, path string) (*ignore.List, string, error) {
	if !cmd.Flags().Changed("ignorefile") {
		found, err := scan.FindIgnoreFile(".")
		if err != nil || found == "" {
			return nil, "", err
		}
		path = found
		fmt.Fprintln(cmd.ErrOrStderr(), "using ignore file", path)
	}
	if path == "" {
		return nil, "", nil
	}
	l, err := ignore.Load(path)
	if err != nil {
		return nil, "", fmt.Errorf("--ignorefile: %w", err)
	}
	return l, path, nil
}

// readStoredReport reads the report given with flag (named in errors, as
// the user typed it).
func readStoredReport(flag, path string) (*match.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	r, err := scan.ReadStored(f)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return r, nil
}

// showProgress draws a progress bar on a terminal while layers are read,
// as berth sbom does; the returned function ends it.
func showProgress(s *inventory.Scanner) func() {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return func() {}
	}
	var bar *progressbar.ProgressBar
	s.OnPlan = func(toRead []image.Layer) {
		var total int64
		for _, l := range toRead {
			total += l.Size
		}
		if total < progressThreshold {
			return
		}
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("reading layers"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100_000_000))
		s.Progress = func(n int64) { bar.Add64(n) }
	}
	return func() {
		if bar != nil {
			bar.Finish()
		}
	}
}

// ageFlag is a duration flag that also takes days ("7d"), the unit people
// think of database age in.
type ageFlag time.Duration

func (a *ageFlag) String() string {
	d := time.Duration(*a)
	if d%(24*time.Hour) == 0 && d > 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func (a *ageFlag) Set(s string) error {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return fmt.Errorf("%q: want a number of days (7d) or a duration (36h)", s)
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q: want a number of days (7d) or a duration (36h)", s)
		}
	}
	if d <= 0 {
		return fmt.Errorf("%q: want a positive age", s)
	}
	*a = ageFlag(d)
	return nil
}

func (a *ageFlag) Type() string { return "age" }
