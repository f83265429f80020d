package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/report"
	"berth.dev/berth/internal/report/sarif"
	"berth.dev/berth/internal/report/vulntable"
	"berth.dev/berth/internal/scan"
)

func newLintCmd() *cobra.Command {
	var (
		format, output, severity string
		exitCode                 int
	)
	cmd := &cobra.Command{
		Use:   "lint DOCKERFILE|MANIFEST.yaml|DIR...",
		Short: "Check Dockerfiles and Kubernetes pod specs for misconfigurations",
		Long: `Check Dockerfiles for misconfigurations: unpinned or latest base images,
root as the last USER, ADD where COPY would do or from a URL, unpinned
apt/apk/pip packages, apt lists left behind, missing --no-install-recommends,
pipes without pipefail, downloads piped into a shell, shell-form CMD and
ENTRYPOINT, secrets in ENV or ARG, no HEALTHCHECK, EXPOSE 22. Kubernetes
manifests (*.yaml, *.yml: Pods, Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs, CronJobs) get the pod securityContext rules: privileged,
root, privilege escalation, writable root filesystem, capabilities, host
namespaces, hostPath volumes, unpinned images.

Each argument is a Dockerfile, or a directory searched for Dockerfile,
Containerfile, *.Dockerfile and Dockerfile.* files and YAML manifests
(hidden directories, node_modules and vendor are skipped; a YAML file found
there that does not parse, such as a Helm template, is named on standard
error and skipped). Files are parsed with BuildKit's parser:
parser directives, line continuations and heredocs are read as docker
build reads them; a file that does not parse is an error naming its line.

Exit codes: 0 when done (also with findings unless --exit-code is set); the
--exit-code value when findings remain after --severity; 1 for an error.
The rules are listed in docs/secrets.md.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if exitCode < 0 || exitCode > 125 {
				return fmt.Errorf("--exit-code %d: want 0 to 125", exitCode)
			}
			filter, err := scan.SeverityFilter(severity)
			if err != nil {
				return fmt.Errorf("--severity: %w", err)
			}
			switch format {
			case "table", "json", "sarif":
			default:
				return fmt.Errorf("--format %q: want table, json or sarif", format)
			}
			files, found, err := dockerfiles(args)
			if err != nil {
				return err
			}
			var all []misconfig.Finding
			var linted []string
			for _, p := range files {
				fs, err := lintFile(p)
				if err != nil {
					// A YAML file met in a directory may be anything (a Helm
					// template, CI configuration): say so and go on.
					if found[p] && isYAML(p) && errors.Is(err, misconfig.ErrSyntax) {
						fmt.Fprintln(cmd.ErrOrStderr(), "warning: skipped:", err)
						continue
					}
					return err
				}
				linted = append(linted, p)
				all = append(all, fs...)
			}
			files = linted
			// The severity filter is the scan's: one definition of HIGH+.
			all = filter.Apply(&match.Report{Misconfigurations: all}).Misconfigurations
			if all == nil {
				all = []misconfig.Finding{}
			}
			if err := writeSBOMOutput(output, func(w io.Writer) error {
				switch format {
				case "json":
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					return enc.Encode(struct {
						Files    []string            `json:"files"`
						Findings []misconfig.Finding `json:"findings"`
					}{files, all})
				case "sarif":
					return sarif.EncodeLint(w, all, sarif.Meta{ToolVersion: version, InformationURI: report.InformationURI})
				}
				return vulntable.EncodeLint(w, all, report.TableOptionsFor(w))
			}); err != nil {
				return err
			}
			if exitCode != 0 && len(all) > 0 {
				return exitError{exitCode}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "table", "output format: table, json, sarif")
	f.StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	f.StringVar(&severity, "severity", "", "ratings to report: a list (LOW,HIGH) or a threshold (MEDIUM+); default all")
	f.IntVar(&exitCode, "exit-code", 0, "exit with this code when findings remain after filtering")
	return cmd
}

func lintFile(p string) ([]misconfig.Finding, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if isYAML(p) {
		return misconfig.LintKubernetes(filepath.ToSlash(p), f)
	}
	return misconfig.LintDockerfile(filepath.ToSlash(p), f)
}

func isYAML(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

// dockerfiles expands the arguments: files as given, directories
// searched for Dockerfiles. Paths stay as the user wrote them, relative
// when they were, so SARIF locations are relative to the repository.
func dockerfiles(args []string) (out []string, found map[string]bool, err error) {
	found = map[string]bool{}
	for _, a := range args {
		info, err := os.Stat(a)
		if err != nil {
			return nil, nil, err
		}
		if !info.IsDir() {
			out = append(out, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != a && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "vendor") {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && (misconfig.IsDockerfile(d.Name()) || isYAML(p)) {
				out = append(out, p)
				found[p] = true
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no Dockerfile or manifest found (looked for Dockerfile, Containerfile, *.Dockerfile, Dockerfile.*, *.yaml, *.yml)")
	}
	slices.Sort(out)
	return slices.Compact(out), found, nil
}
