package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb/update"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

// scanRun is one run of the scan command as the binary runs it.
type scanRun struct {
	stdout, stderr string
	code           int // process exit code: 0, an exitError's, or 1 for other errors
	err            error
}

func runScan(t *testing.T, args ...string) scanRun {
	t.Helper()
	cmd := newScanCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	// Table output goes to os.Stdout in the command (as for berth sbom);
	// tests read documents from -o files instead.
	err := cmd.ExecuteContext(context.Background())
	r := scanRun{stdout: out.String(), stderr: errOut.String(), err: err}
	var ee exitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.code
	case err != nil:
		r.code = 1
	}
	return r
}

func readReport(t *testing.T, path string) *match.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r match.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func ids(fs []match.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	slices.Sort(out)
	return out
}

func suppressedBy(r *match.Report) map[string]string {
	out := map[string]string{}
	for _, s := range r.Suppressed {
		out[s.Finding.ID] = s.By
	}
	return out
}

// TestScanCommand runs berth scan on kitchen-sink against a DB built from
// vulndata through the real update path, served over loopback HTTP. The
// expected ids come from reading the records (see
// internal/scan/scan_test.go); the counts are those of this data.
func TestScanCommand(t *testing.T) {
	vulndata := testpeers.Shared(t, "vulndata")
	img := testpeers.Shared(t, "images", "kitchen-sink.oci.tar")
	testdata, _ := filepath.Abs("testdata/scan")
	srv := vulndbtest.NewServer(t, vulndata)
	dbDir := t.TempDir()
	if _, err := update.Run(context.Background(), update.Options{
		Dir: dbDir,
		Sources: []string{srv.URL + "/osv", update.PrefixDebianTracker + srv.URL + "/debian-tracker",
			update.PrefixAlpineSecDB + srv.URL + "/alpine-secdb", update.PrefixNodeJSWG + srv.URL + "/nodejs-security-wg/vuln.zip"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	// The working directory is where the default ignore file is looked for.
	work := t.TempDir()
	t.Chdir(work)
	base := []string{"--db-dir", dbDir, "--cache-dir", cacheDir}
	scan := func(t *testing.T, extra ...string) (scanRun, *match.Report) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "report.json")
		r := runScan(t, slices.Concat(base, []string{"-f", "json", "-o", out}, extra)...)
		if r.code != 0 && r.code != 7 && r.code != exitDB {
			t.Fatalf("scan %q: exit %d: %v\n%s", extra, r.code, r.err, r.stderr)
		}
		return r, readReport(t, out)
	}

	t.Run("findings and summary", func(t *testing.T) {
		r, rep := scan(t, "oci-archive:"+img)
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.stderr)
		}
		for _, id := range []string{"CVE-2020-8203", "CVE-2021-44906", "CVE-2020-15168", "CVE-2022-32149", "CVE-2023-39325"} {
			if !slices.Contains(ids(rep.Findings), id) {
				t.Errorf("no %s", id)
			}
		}
		want := "kitchen-sink: 26 vulnerabilities (CRITICAL 1, HIGH 3, MEDIUM 4, LOW 1, UNKNOWN 17); 131 packages not judged (the database holds no debian 12 records); 1 secret (CRITICAL 1), 2 allowed\n"
		if !strings.HasSuffix(r.stderr, want) {
			t.Errorf("stderr %q, want it to end with the summary %q", r.stderr, want)
		}
	})

	t.Run("exit code", func(t *testing.T) {
		// kitchen-sink's Debian 12 packages cannot be judged by this
		// database (see "uncovered release"); --allow-uncovered lets the
		// gate look at the findings alone.
		if r, _ := scan(t, "--exit-code", "7", "--allow-uncovered", "--severity", "HIGH,CRITICAL", "oci-archive:"+img); r.code != 7 {
			t.Errorf("findings with --exit-code 7: exit %d (%v)", r.code, r.err)
		}
		// No finding is rated NONE: nothing remains, so 0.
		if r, rep := scan(t, "--exit-code", "7", "--allow-uncovered", "--severity", "NONE", "oci-archive:"+img); r.code != 0 || len(rep.Findings) != 0 ||
			!strings.Contains(r.stderr, "no vulnerabilities, 26 hidden by filters") {
			t.Errorf("clean with --exit-code 7: exit %d, %d findings, stderr %q", r.code, len(rep.Findings), r.stderr)
		}
		// Without --exit-code findings are not a failure.
		if r, _ := scan(t, "oci-archive:"+img); r.code != 0 {
			t.Errorf("findings without --exit-code: exit %d", r.code)
		}
	})

	// Issue 18: a Debian 12 image against a database without Debian 12
	// records printed "no vulnerabilities" and passed a gate. It fails it
	// now, exit 3 as for a stale database, and the summary says how many
	// packages were not judged.
	t.Run("uncovered release", func(t *testing.T) {
		const notJudged = "; 131 packages not judged (the database holds no debian 12 records)"
		r, rep := scan(t, "--exit-code", "5", "--severity", "NONE", "oci-archive:"+img)
		if r.code != exitDB || len(rep.Findings) != 0 {
			t.Errorf("gate on an uncovered release: exit %d, %d findings, want exit 3 and the report written", r.code, len(rep.Findings))
		}
		for _, want := range []string{"no vulnerabilities, 26 hidden by filters" + notJudged,
			"berth: 131 packages could not be judged (the database holds no debian 12 records): the gate fails"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if r, _ := scan(t, "--exit-code", "5", "--severity", "NONE", "--allow-uncovered", "oci-archive:"+img); r.code != 0 || !strings.Contains(r.stderr, notJudged) {
			t.Errorf("--allow-uncovered: exit %d, stderr %q", r.code, r.stderr)
		}
		// Without a gate nothing fails; the summary still says it.
		if r, _ := scan(t, "oci-archive:"+img); r.code != 0 || !strings.Contains(r.stderr, notJudged) {
			t.Errorf("no gate: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("quiet prints only the report", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(work, ".trivyignore"), []byte("CVE-2021-38561 exp:2020-01-01\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(work, ".trivyignore"))
		r, rep := scan(t, "-q", "--db-max-age", "1ns", "oci-archive:"+img)
		if r.code != 0 || r.stderr != "" || len(rep.Findings) != 26 {
			t.Errorf("-q: exit %d, %d findings, stderr %q (want nothing: no summary, warning or ignore-file line)", r.code, len(rep.Findings), r.stderr)
		}
		// Errors are not hushed.
		if r := runScan(t, slices.Concat(base, []string{"-q", "-o", filepath.Join(t.TempDir(), "t"), "--exit-code", "2", "oci-archive:" + img})...); r.code != exitDB || !strings.Contains(r.stderr, "could not be judged") {
			t.Errorf("-q with a failing gate: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	// Trivy's --input is an image tarball; berth's stored reports moved to
	// --from-report.
	t.Run("input archive", func(t *testing.T) {
		r, rep := scan(t, "--input", img)
		if r.code != 0 || len(rep.Findings) != 26 || rep.Inventory.Source != img {
			t.Errorf("--input archive: exit %d (%v), %d findings, source %q", r.code, r.err, len(rep.Findings), rep.Inventory.Source)
		}
		stored := filepath.Join(t.TempDir(), "stored.json")
		if r := runScan(t, slices.Concat(base, []string{"-q", "-f", "json", "-o", stored, "oci-archive:" + img})...); r.err != nil {
			t.Fatal(r.err)
		}
		if r := runScan(t, slices.Concat(base, []string{"--input", stored})...); r.code != 1 || !strings.Contains(r.err.Error(), "is read with --from-report") {
			t.Errorf("--input of a stored report: exit %d, %v", r.code, r.err)
		}
	})

	// sbom:FILE scans what an SBOM lists, berth's own included: the same
	// findings as the image.
	t.Run("sbom file", func(t *testing.T) {
		_, fromImage := scan(t, "oci-archive:"+img)
		for _, f := range []string{"cyclonedx", "spdx"} {
			doc := filepath.Join(t.TempDir(), "ks."+f+".json")
			cmd := newSBOMCmd()
			cmd.SetArgs([]string{"--cache-dir", cacheDir, "-f", f, "-o", doc, "oci-archive:" + img})
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			r, fromSBOM := scan(t, "sbom:"+doc)
			if r.code != 0 {
				t.Fatalf("sbom:%s: exit %d %v\n%s", f, r.code, r.err, r.stderr)
			}
			type key struct{ id, pkg, version string }
			keys := func(rep *match.Report) []key {
				var out []key
				for _, f := range rep.Findings {
					out = append(out, key{f.ID, f.Package.Name, f.Package.Version})
				}
				slices.SortFunc(out, func(a, b key) int { return strings.Compare(a.id+a.pkg, b.id+b.pkg) })
				return out
			}
			if got, want := keys(fromSBOM), keys(fromImage); !slices.Equal(got, want) {
				t.Errorf("sbom:%s found %v\nthe image %v", f, got, want)
			}
			if !strings.Contains(r.stderr, "131 packages not judged") {
				t.Errorf("sbom:%s summary: %s", f, r.stderr)
			}
		}
		if r := runScan(t, slices.Concat(base, []string{"sbom:" + img})...); r.code != 1 || !strings.Contains(r.err.Error(), "not a CycloneDX or SPDX JSON document") {
			t.Errorf("sbom: of an archive: exit %d, %v", r.code, r.err)
		}
	})

	// Issue 18: HIGH+ used to keep UNKNOWN (17 of 21 findings); as with
	// Trivy, UNKNOWN is kept only when named.
	t.Run("severity threshold", func(t *testing.T) {
		for spec, want := range map[string]int{"HIGH+": 4, "HIGH,CRITICAL": 4, "HIGH+,UNKNOWN": 21} {
			r, rep := scan(t, "--severity", spec, "oci-archive:"+img)
			for _, f := range rep.Findings {
				if f.Severity != match.SeverityCritical && f.Severity != match.SeverityHigh && (f.Severity != match.SeverityUnknown || spec != "HIGH+,UNKNOWN") {
					t.Errorf("%s rated %s kept by %s", f.ID, f.Severity, spec)
				}
			}
			if len(rep.Findings) != want {
				t.Errorf("%s kept %d findings, want %d", spec, len(rep.Findings), want)
			}
			if spec == "HIGH+" && !strings.Contains(r.stderr, "4 vulnerabilities (CRITICAL 1, HIGH 3), 22 hidden by filters") {
				t.Errorf("HIGH+ summary: %q", r.stderr)
			}
		}
	})

	t.Run("ignore file with an expired entry", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(testdata, "kitchen-sink.trivyignore"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, ".trivyignore"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(work, ".trivyignore"))
		r, rep := scan(t, "oci-archive:"+img)
		if got := suppressedBy(rep); got["CVE-2021-38561"] != "ignore" || len(got) != 1 {
			t.Errorf("suppressed %v, want CVE-2021-38561 by the ignore file", got)
		}
		// CVE-2020-8203's entry expired on 2024-01-31: reported, with a warning.
		if !slices.Contains(ids(rep.Findings), "CVE-2020-8203") {
			t.Error("expired ignore entry still suppresses CVE-2020-8203")
		}
		for _, want := range []string{"using ignore file .trivyignore", "warning: ignore entry CVE-2020-8203 (.trivyignore:5) expired on 2024-01-31", ", 1 suppressed"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		// --ignorefile= turns the default off.
		if _, rep := scan(t, "--ignorefile=", "oci-archive:"+img); len(rep.Suppressed) != 0 {
			t.Errorf("--ignorefile= still suppressed %v", suppressedBy(rep))
		}
	})

	t.Run("VEX", func(t *testing.T) {
		_, rep := scan(t, "--vex", filepath.Join(testdata, "kitchen-sink.openvex.json"), "oci-archive:"+img)
		if got := suppressedBy(rep); got["CVE-2020-7598"] != "vex" || len(got) != 1 {
			t.Errorf("suppressed %v, want CVE-2020-7598 by VEX", got)
		}
		for _, f := range rep.Findings {
			if f.ID == "CVE-2022-32149" && (f.VEX == nil || f.VEX.Status != "under_investigation") {
				t.Errorf("CVE-2022-32149 VEX note %+v", f.VEX)
			}
		}
	})

	t.Run("input rematch without the image", func(t *testing.T) {
		moved := filepath.Join(t.TempDir(), "ks.oci.tar")
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(moved, data, 0o644); err != nil {
			t.Fatal(err)
		}
		stored := filepath.Join(t.TempDir(), "stored.json")
		if r := runScan(t, slices.Concat(base, []string{"-q", "-f", "json", "-o", stored, "oci-archive:" + moved})...); r.err != nil {
			t.Fatal(r.err)
		}
		if err := os.Remove(moved); err != nil {
			t.Fatal(err)
		}
		r, rep := scan(t, "--from-report", stored)
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.stderr)
		}
		if got := ids(rep.Findings); len(got) != 26 || !slices.Contains(got, "CVE-2020-8203") {
			t.Errorf("rematch found %v", got)
		}
	})

	t.Run("ignore unfixed", func(t *testing.T) {
		// PYSEC-2024-55 affects every cipherbcrypt version and names no
		// fix; lodash's findings all have one.
		inv := inventory.Inventory{Source: "app", Packages: []inventory.Package{
			{Ecosystem: inventory.PyPI, Name: "cipherbcrypt", Version: "1.0.0", PURL: "pkg:pypi/cipherbcrypt@1.0.0", Locations: []string{"/app/requirements.txt"}},
			{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.15", PURL: "pkg:npm/lodash@4.17.15", Locations: []string{"/app/package-lock.json"}},
		}}
		invFile := filepath.Join(t.TempDir(), "inventory.json")
		data, _ := json.Marshal(inv)
		if err := os.WriteFile(invFile, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, all := scan(t, "--from-report", invFile)
		if !slices.Contains(ids(all.Findings), "PYSEC-2024-55") {
			t.Fatalf("no unfixed finding to drop: %v", ids(all.Findings))
		}
		r, fixed := scan(t, "--ignore-unfixed", "--exit-code", "7", "--from-report", invFile)
		if slices.Contains(ids(fixed.Findings), "PYSEC-2024-55") || len(fixed.Findings) != len(all.Findings)-1 || r.code != 7 {
			t.Errorf("--ignore-unfixed kept %v, exit %d", ids(fixed.Findings), r.code)
		}
	})

	t.Run("formats", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"sarif", "cyclonedx", "json", "table"} {
			out := filepath.Join(dir, "out."+f)
			if r := runScan(t, slices.Concat(base, []string{"-q", "-f", f, "-o", out, "oci-archive:" + img})...); r.err != nil {
				t.Fatalf("%s: %v", f, r.err)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if f != "table" && !json.Valid(data) {
				t.Errorf("%s output is not JSON", f)
			}
			if !bytes.Contains(data, []byte("CVE-2020-8203")) {
				t.Errorf("%s output does not name CVE-2020-8203", f)
			}
		}
	})

	t.Run("database missing or stale", func(t *testing.T) {
		for _, flag := range []string{"--offline", "--skip-db-update"} {
			r := runScan(t, "--db-dir", t.TempDir(), "--cache-dir", cacheDir, flag, "oci-archive:"+img)
			if r.code != exitDB || !strings.Contains(r.stderr, "run 'berth db update'") {
				t.Errorf("missing DB with %s: exit %d, stderr %q", flag, r.code, r.stderr)
			}
		}
		r := runScan(t, slices.Concat(base, []string{"-o", filepath.Join(t.TempDir(), "t"), "--db-max-age", "1ns", "oci-archive:" + img})...)
		if r.code != 0 || !strings.Contains(r.stderr, "warning: vulnerability database is") {
			t.Errorf("stale DB: exit %d, stderr %q", r.code, r.stderr)
		}
		r = runScan(t, slices.Concat(base, []string{"--db-max-age", "1ns", "--fail-on-stale-db", "oci-archive:" + img})...)
		if r.code != exitDB || !strings.Contains(r.stderr, "run 'berth db update'") {
			t.Errorf("stale DB with --fail-on-stale-db: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	// Issue 18: with no database at all, a scan builds one from the
	// default sources (here BERTH_DB_SOURCES, a loopback mirror) instead
	// of stopping, and uses it.
	t.Run("database built on first use", func(t *testing.T) {
		t.Setenv("BERTH_DB_SOURCES", srv.URL+"/osv#npm "+update.PrefixNodeJSWG+srv.URL+"/nodejs-security-wg/vuln.zip")
		dir := filepath.Join(t.TempDir(), "db")
		out := filepath.Join(t.TempDir(), "report.json")
		r := runScan(t, "--db-dir", dir, "--cache-dir", cacheDir, "-f", "json", "-o", out, "oci-archive:"+img)
		if r.code != 0 || !strings.Contains(r.stderr, "no vulnerability database in "+dir+": building one from "+srv.URL+"/osv#npm") {
			t.Fatalf("first scan without a database: exit %d (%v)\n%s", r.code, r.err, r.stderr)
		}
		if rep := readReport(t, out); !slices.Contains(ids(rep.Findings), "CVE-2021-44906") {
			t.Errorf("the scan did not use the database it built: %v", ids(rep.Findings))
		}
		if r := runScan(t, "--db-dir", dir, "--cache-dir", cacheDir, "-o", filepath.Join(t.TempDir(), "t"), "oci-archive:"+img); r.code != 0 || strings.Contains(r.stderr, "building one") {
			t.Errorf("second scan: exit %d, stderr %q", r.code, r.stderr)
		}
		t.Setenv("BERTH_DB_SOURCES", srv.URL+"/missing")
		r = runScan(t, "--db-dir", filepath.Join(t.TempDir(), "db"), "--cache-dir", cacheDir, "oci-archive:"+img)
		if r.code != exitDB || !strings.Contains(r.stderr, "building one failed") {
			t.Errorf("a failed build: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		notJSON := filepath.Join(t.TempDir(), "x.json")
		os.WriteFile(notJSON, []byte("not json"), 0o644)
		tests := []struct {
			args []string
			want string
		}{
			{nil, "needs an IMAGE"},
			{[]string{"--input", img, "oci-archive:" + img}, "not several"},
			{[]string{"--from-report", notJSON, "--input", img}, "not several"},
			{[]string{"--format", "xml", "x"}, "unknown format"},
			{[]string{"--severity", "SEVERE", "x"}, "unknown severity"},
			{[]string{"--exit-code", "300", "x"}, "0 to 125"},
			{[]string{"--db-max-age", "soon", "x"}, "days"},
			{[]string{"--ignorefile", filepath.Join(t.TempDir(), "missing"), "x"}, "ignore file"},
			{[]string{"--vex", filepath.Join(t.TempDir(), "missing.json"), "x"}, "VEX document"},
			{[]string{"--from-report", notJSON}, "not JSON"},
			{[]string{"--input", t.TempDir()}, "not a file"},
			{[]string{"--username", "u", "--registry-token", "t", "x"}, "one or the other"},
			{[]string{"--password", "p", "x"}, "--password needs --username"},
			{[]string{"oci-archive:" + filepath.Join(t.TempDir(), "missing.tar")}, "missing.tar"},
			{[]string{"--scanners", "vuln,malware", "x"}, `unknown scanner "malware"`},
			{[]string{"--scanners", "secret", "--secret-config", filepath.Join(t.TempDir(), "missing.toml"), "x"}, "--secret-config"},
		}
		for _, tc := range tests {
			r := runScan(t, slices.Concat(base, tc.args)...)
			if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("%q: exit %d error %v, want exit 1 and an error containing %q", tc.args, r.code, r.err, tc.want)
			}
		}
	})
}
