package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/package-url/packageurl-go"
	"golang.org/x/sync/errgroup"
)

// peerTool is a peer's scanner run on the same placed fixtures as berth,
// so that its figure against the other peers' tests sits beside berth's:
// whether a target is beyond berth or beyond what any of these tools
// does is then measured, not argued.
type peerTool struct {
	name string
	// own is the suite whose tests are the tool's own (its figure there
	// says little: the tests were written for its output).
	own string
	// skip says why the tool does not read a source's case in the mode
	// it is run in ("" when it does).
	skip func(src source, c testCase) string
	run  func(ctx context.Context, root string) ([]found, error)
}

// syftTool runs syft's directory scan and reads its CycloneDX output.
func syftTool(bin string) peerTool {
	return peerTool{
		name: "syft",
		own:  "syft",
		skip: func(source, testCase) string { return "" },
		run: func(ctx context.Context, root string) ([]found, error) {
			cmd := exec.CommandContext(ctx, bin, "scan", "dir:"+root, "-o", "cyclonedx-json", "-q")
			cmd.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false")
			out, err := output(cmd)
			if err != nil {
				return nil, err
			}
			return syftPackages(out)
		},
	}
}

// syftOutputTypes gives the ecosystem of each package type syft writes
// (syft:package:type) that berth has an analyzer for; the others
// (binaries classified by content, Arch, Nix, …) are not compared.
var syftOutputTypes = map[string]string{
	"jenkins-plugin": "maven", "apk": "apk", "deb": "deb", "rpm": "rpm", "npm": "npm", "python": "pypi",
	"go-module": "golang", "java-archive": "maven", "gem": "gem",
	"rust-crate": "cargo", "php-composer": "composer", "dotnet": "nuget",
	"dart-pub": "pub", "hex": "hex", "conan": "conan", "conda": "conda",
}

// syftPackages reads syft's CycloneDX document: the package type and the
// files it came from are in syft's properties. Maven packages are named
// group:artifact from the purl, as berth names them.
func syftPackages(doc []byte) ([]found, error) {
	var bom struct {
		Components []struct {
			Name, Version, Purl string
			Properties          []struct{ Name, Value string }
		}
	}
	if err := json.Unmarshal(doc, &bom); err != nil {
		return nil, fmt.Errorf("syft's CycloneDX: %w", err)
	}
	var out []found
	for _, c := range bom.Components {
		var f found
		for _, p := range c.Properties {
			switch {
			case p.Name == "syft:package:type":
				f.Eco = syftOutputTypes[p.Value]
			case strings.HasPrefix(p.Name, "syft:location:") && strings.HasSuffix(p.Name, ":path"):
				f.locations = append(f.locations, p.Value)
			}
		}
		if f.Eco == "" {
			continue
		}
		f.Name, f.Version = c.Name, c.Version
		if f.Version == "UNKNOWN" {
			f.Version = "" // syft's word for a version it could not read
		}
		if u, err := packageurl.FromString(c.Purl); err == nil && u.Type == "maven" && u.Namespace != "" {
			f.Eco, f.Name = "maven", u.Namespace+":"+u.Name
		}
		out = append(out, f)
	}
	return out, nil
}

// osvScannerTool runs osv-scanner's source scan offline, against empty
// local databases (only the package list is wanted). A source scan reads
// lockfiles, manifests and installed language packages, not an OS
// package database (osv-scanner reads those in an image scan only).
func osvScannerTool(bin, dbDir string) peerTool {
	return peerTool{
		name: "osv-scanner",
		own:  "scalibr",
		skip: func(src source, c testCase) string {
			if eco := c.ecosystem(src); eco == "deb" || eco == "rpm" || eco == "apk" {
				return "osv-scanner's source scan reads no OS package database"
			}
			return ""
		},
		run: func(ctx context.Context, root string) ([]found, error) {
			// Its default plugins and the "artifact" preset (installed
			// Python and Ruby packages, Go binaries), which berth reads
			// in a directory too; no call analysis (it needs the Go
			// toolchain and a module download).
			cmd := exec.CommandContext(ctx, bin, "scan", "source", "--offline", "--no-call-analysis=all",
				"--experimental-plugins=lockfile", "--experimental-plugins=sbom", "--experimental-plugins=directory", "--experimental-plugins=artifact",
				"--format", "json", "--all-packages", "-r", root)
			cmd.Env = append(os.Environ(), "OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY="+dbDir)
			out, err := output(cmd)
			// Exit status 1 is "vulnerabilities found", 128 "no package
			// found"; either way the JSON on stdout is the answer.
			var ee *exec.ExitError
			if err != nil && !(errors.As(err, &ee) && (ee.ExitCode() == 1 || ee.ExitCode() == 128)) {
				return nil, err
			}
			return osvPackages(out, root)
		},
	}
}

// osvEcosystems gives berth's ecosystem for each of osv-scanner's.
var osvEcosystems = map[string]string{
	"PyPI": "pypi", "npm": "npm", "Go": "golang", "Maven": "maven", "crates.io": "cargo",
	"Packagist": "composer", "NuGet": "nuget", "RubyGems": "gem", "Pub": "pub", "Hex": "hex",
	"ConanCenter": "conan", "Debian": "deb", "Ubuntu": "deb", "Alpine": "apk", "Red Hat": "rpm",
}

// osvPackages reads osv-scanner's JSON results; a package's dev group
// is kept, as berth's dev flag is.
func osvPackages(doc []byte, root string) ([]found, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, nil
	}
	var res struct {
		Results []struct {
			Source   struct{ Path string }
			Packages []struct {
				Package struct {
					Name, Version, Ecosystem string
				}
				DepGroups []string `json:"dependency_groups"`
			}
		}
	}
	if err := json.Unmarshal(doc, &res); err != nil {
		return nil, fmt.Errorf("osv-scanner's JSON: %w", err)
	}
	var out []found
	for _, r := range res.Results {
		loc := "/" + filepath.ToSlash(strings.TrimPrefix(strings.TrimPrefix(r.Source.Path, root), string(filepath.Separator)))
		for _, p := range r.Packages {
			eco := osvEcosystems[strings.SplitN(p.Package.Ecosystem, ":", 2)[0]]
			if eco == "" {
				continue
			}
			dev := false
			for _, g := range p.DepGroups {
				dev = dev || g == "dev"
			}
			out = append(out, found{pkg{Eco: eco, Name: p.Package.Name, Version: p.Package.Version}, dev, []string{loc}})
		}
	}
	return out, nil
}

// output runs cmd and returns its stdout; stderr goes into the error.
func output(cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// The line that says what went wrong: a panic's first line, or
		// the last line the tool wrote (the rest is its progress).
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		msg := lines[len(lines)-1]
		for _, l := range lines {
			if strings.HasPrefix(l, "panic: ") {
				msg = l
				break
			}
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, msg)
	}
	return stdout.Bytes(), nil
}

// peerJob is one measured case whose placed root the peers scan, with
// berth's tallies on it.
type peerJob struct {
	src        source
	c          testCase
	root, dest string
	berth      outcome
}

// sideBySide runs every tool on every placed case and prints, per tool
// and per suite, its recall and precision beside berth's on exactly the
// cases the tool read. A tool that fails on a case found nothing there,
// as its user would see; the failures are listed.
func sideBySide(ctx context.Context, w io.Writer, tools []peerTool, jobs []peerJob, verbose bool) error {
	results := make([][]tally, len(tools))
	gots := make([][]map[pkg]bool, len(tools))
	diffs := make([][]string, len(tools))
	failed := make([][]string, len(tools))
	for i := range tools {
		results[i] = make([]tally, len(jobs))
		diffs[i] = make([]string, len(jobs))
		gots[i] = make([]map[pkg]bool, len(jobs))
		failed[i] = make([]string, len(jobs))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for ti, tool := range tools {
		for ji, j := range jobs {
			if tool.skip(j.src, j.c) != "" {
				continue
			}
			g.Go(func() error {
				fs, err := tool.run(gctx, j.root)
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if err != nil {
					failed[ti][ji] = fmt.Sprintf("%s %s: %v", j.c.Pos, j.c.Fixture, err)
					fs = nil
				}
				if j.src.fixtureOnly {
					fs = fromFixture(fs, j.dest)
				}
				out := compare(j.src, j.c, fs)
				results[ti][ji] = out.total()
				gots[ti][ji] = out.got
				var d []string
				for _, m := range out.misses {
					d = append(d, "  miss    "+m)
				}
				for _, p := range out.phantoms {
					d = append(d, "  phantom "+p)
				}
				diffs[ti][ji] = strings.Join(d, "\n")
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("running the peers: %w", err)
	}

	printAgreed(w, tools, jobs, gots)
	fmt.Fprintln(w, "\n# Side by side: each peer's scanner on the same placed fixtures, against the same expectations")
	fmt.Fprintln(w, "Each tool's own suite is marked; its tests were written for its output. berth's figures are over the cases the tool read.")
	suites := []string{"scalibr", "trivy", "rpmdb", "syft", "osvscanner"}
	for ti, tool := range tools {
		peer, berth := map[string]*tally{}, map[string]*tally{}
		notOwn := "all but " + tool.own
		reasons := map[string]int{}
		for ji, j := range jobs {
			if why := tool.skip(j.src, j.c); why != "" {
				reasons[why]++
				continue
			}
			for _, row := range []string{j.src.module, "all"} {
				if peer[row] == nil {
					peer[row], berth[row] = &tally{}, &tally{}
				}
				peer[row].add(results[ti][ji])
				berth[row].add(j.berth.total())
			}
			if j.src.module != tool.own {
				if peer[notOwn] == nil {
					peer[notOwn], berth[notOwn] = &tally{}, &tally{}
				}
				peer[notOwn].add(results[ti][ji])
				berth[notOwn].add(j.berth.total())
			}
		}
		fmt.Fprintf(w, "\n## %s\n", tool.name)
		for _, why := range sortedKeys(reasons) {
			fmt.Fprintf(w, "%d cases not run: %s\n", reasons[why], why)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "suite\tcases\texpected\tberth recall\tberth precision\t%s recall\t%s precision\t\n", tool.name, tool.name)
		for _, row := range append(suites, "all", notOwn) {
			p, b := peer[row], berth[row]
			if p == nil {
				continue
			}
			label := row
			if row == tool.own {
				label += " (own)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", label, p.cases, p.want,
				ratio(b.tp, b.want), ratio(b.tp, b.found), ratio(p.tp, p.want), ratio(p.tp, p.found))
		}
		tw.Flush()
		var fails []string
		for _, f := range failed[ti] {
			if f != "" {
				fails = append(fails, f)
			}
		}
		if verbose {
			fmt.Fprintf(w, "%s's misses and phantoms:\n", tool.name)
			for _, d := range diffs[ti] {
				if d != "" {
					fmt.Fprintln(w, d)
				}
			}
		}
		sort.Strings(fails)
		if len(fails) > 0 {
			fmt.Fprintf(w, "%s failed on %d cases (counted as finding nothing):\n", tool.name, len(fails))
			for _, f := range fails {
				fmt.Fprintln(w, "  "+f)
			}
		}
	}
	return nil
}

// emptyOSVDatabases makes the local database folder osv-scanner's
// offline mode reads, with an empty record archive per ecosystem: the
// package list is wanted, not findings, and nothing is downloaded.
func emptyOSVDatabases() (string, error) {
	dir, err := os.MkdirTemp("", "peerfixtures-osvdb-")
	if err != nil {
		return "", fmt.Errorf("osv-scanner database folder: %w", err)
	}
	// The 22 bytes of a zip archive with no entry.
	empty := append([]byte("PK\x05\x06"), make([]byte, 18)...)
	for _, eco := range slices.Sorted(maps.Keys(osvEcosystems)) {
		d := filepath.Join(dir, "osv-scanner", eco)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("osv-scanner database folder: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d, "all.zip"), empty, 0o644); err != nil {
			return "", fmt.Errorf("osv-scanner database folder: %w", err)
		}
	}
	return dir, nil
}

// printAgreed prints berth's recall and precision over the packages on
// which the test and every peer tool that read the case agree: expected
// and found by every tool (berth should find it), or not expected and
// found by no tool (berth should not list it). What is left out is where
// the peers differ among themselves, which no choice of berth's can
// satisfy for all of them.
func printAgreed(w io.Writer, tools []peerTool, jobs []peerJob, gots [][]map[pkg]bool) {
	type row struct{ present, foundPresent, absentFound, differ int }
	rows := map[string]*row{}
	var wrong []string // berth's misses and phantoms where the peers agree
	for ji, j := range jobs {
		var voters []map[pkg]bool
		for ti, tool := range tools {
			if tool.skip(j.src, j.c) == "" {
				voters = append(voters, gots[ti][ji])
			}
		}
		everyone := func(p pkg) bool {
			for _, g := range voters {
				if !g[p] {
					return false
				}
			}
			return true
		}
		nobody := func(p pkg) bool {
			for _, g := range voters {
				if g[p] {
					return false
				}
			}
			return true
		}
		line := func(what string, p pkg) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s %s\t%s", what, p.Eco, j.c.Pos, p.Name, p.Version, j.c.Fixture)
		}
		for p := range j.berth.want {
			if everyone(p) && !j.berth.got[p] {
				wrong = append(wrong, line("miss", p))
			}
		}
		for p := range j.berth.got {
			if !j.berth.want[p] && nobody(p) {
				wrong = append(wrong, line("phantom", p))
			}
		}
		for _, key := range []string{j.src.module, "all"} {
			if rows[key] == nil {
				rows[key] = &row{}
			}
			r := rows[key]
			for p := range j.berth.want {
				if everyone(p) {
					r.present++
					if j.berth.got[p] {
						r.foundPresent++
					}
				} else {
					r.differ++
				}
			}
			for p := range j.berth.got {
				if j.berth.want[p] {
					continue
				}
				if nobody(p) {
					r.absentFound++
				} else {
					r.differ++
				}
			}
		}
	}
	fmt.Fprintln(w, "\n# Where the peers agree")
	fmt.Fprintln(w, "Packages the test expects and every peer tool that read the case found, and packages berth found that neither the test nor any of those tools lists; the rest, where the peers differ, are counted apart.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "suite\tagreed present\tberth found\tberth recall\tberth phantoms nobody lists\tberth precision\tpeers differ\t")
	for _, key := range []string{"scalibr", "trivy", "rpmdb", "syft", "osvscanner", "all"} {
		r := rows[key]
		if r == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%d\t\n", key, r.present, r.foundPresent, ratio(r.foundPresent, r.present),
			r.absentFound, ratio(r.foundPresent, r.foundPresent+r.absentFound), r.differ)
	}
	tw.Flush()
	sort.Strings(wrong)
	fmt.Fprintf(w, "berth's misses and phantoms where the peers agree: %d\n", len(wrong))
	for _, l := range wrong {
		fmt.Fprintln(w, l)
	}
}
