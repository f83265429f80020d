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
	sharedDir := filepath.Join("..", "..", "..", "shared")
	vulndata, _ := filepath.Abs(filepath.Join(sharedDir, "vulndata"))
	img, _ := filepath.Abs(filepath.Join(sharedDir, "images", "kitchen-sink.oci.tar"))
	testdata, _ := filepath.Abs("testdata/scan")
	for _, p := range []string{vulndata, img} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("shared fixtures not present: %v", err)
		}
	}
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
		if r.code != 0 && r.code != 7 {
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
		want := "kitchen-sink: 26 vulnerabilities (CRITICAL 1, HIGH 3, MEDIUM 4, LOW 1, UNKNOWN 17); 1 secret (CRITICAL 1), 2 allowed\n"
		if !strings.HasSuffix(r.stderr, want) {
			t.Errorf("stderr %q, want it to end with the summary %q", r.stderr, want)
		}
	})

	t.Run("exit code", func(t *testing.T) {
		if r, _ := scan(t, "--exit-code", "7", "--severity", "HIGH,CRITICAL", "oci-archive:"+img); r.code != 7 {
			t.Errorf("findings with --exit-code 7: exit %d (%v)", r.code, r.err)
		}
		// No finding is rated NONE: nothing remains, so 0.
		if r, rep := scan(t, "--exit-code", "7", "--severity", "NONE", "oci-archive:"+img); r.code != 0 || len(rep.Findings) != 0 ||
			!strings.Contains(r.stderr, "no vulnerabilities, 26 hidden by filters") {
			t.Errorf("clean with --exit-code 7: exit %d, %d findings, stderr %q", r.code, len(rep.Findings), r.stderr)
		}
		// Without --exit-code findings are not a failure.
		if r, _ := scan(t, "oci-archive:"+img); r.code != 0 {
			t.Errorf("findings without --exit-code: exit %d", r.code)
		}
	})

	t.Run("severity threshold", func(t *testing.T) {
		_, rep := scan(t, "--severity", "HIGH+", "oci-archive:"+img)
		for _, f := range rep.Findings {
			if f.Severity != match.SeverityCritical && f.Severity != match.SeverityHigh && f.Severity != match.SeverityUnknown {
				t.Errorf("%s rated %s kept by HIGH+", f.ID, f.Severity)
			}
		}
		if len(rep.Findings) != 21 {
			t.Errorf("HIGH+ kept %d findings, want 21 (CRITICAL 1, HIGH 3, UNKNOWN 17)", len(rep.Findings))
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
		r, rep := scan(t, "--input", stored)
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
		_, all := scan(t, "--input", invFile)
		if !slices.Contains(ids(all.Findings), "PYSEC-2024-55") {
			t.Fatalf("no unfixed finding to drop: %v", ids(all.Findings))
		}
		r, fixed := scan(t, "--ignore-unfixed", "--exit-code", "7", "--input", invFile)
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
		r := runScan(t, "--db-dir", t.TempDir(), "--cache-dir", cacheDir, "oci-archive:"+img)
		if r.code != exitDB || !strings.Contains(r.stderr, "run 'berth db update'") {
			t.Errorf("missing DB: exit %d, stderr %q", r.code, r.stderr)
		}
		r = runScan(t, slices.Concat(base, []string{"-q", "-o", filepath.Join(t.TempDir(), "t"), "--db-max-age", "1ns", "oci-archive:" + img})...)
		if r.code != 0 || !strings.Contains(r.stderr, "warning: vulnerability database is") {
			t.Errorf("stale DB: exit %d, stderr %q", r.code, r.stderr)
		}
		r = runScan(t, slices.Concat(base, []string{"--db-max-age", "1ns", "--fail-on-stale-db", "oci-archive:" + img})...)
		if r.code != exitDB || !strings.Contains(r.stderr, "run 'berth db update'") {
			t.Errorf("stale DB with --fail-on-stale-db: exit %d, stderr %q", r.code, r.stderr)
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
			{[]string{"--input", notJSON, "oci-archive:" + img}, "not both"},
			{[]string{"--format", "xml", "x"}, "unknown format"},
			{[]string{"--severity", "SEVERE", "x"}, "unknown severity"},
			{[]string{"--exit-code", "300", "x"}, "0 to 125"},
			{[]string{"--db-max-age", "soon", "x"}, "days"},
			{[]string{"--ignorefile", filepath.Join(t.TempDir(), "missing"), "x"}, "ignore file"},
			{[]string{"--vex", filepath.Join(t.TempDir(), "missing.json"), "x"}, "VEX document"},
			{[]string{"--input", notJSON}, "not JSON"},
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
