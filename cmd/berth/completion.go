package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/report"
	"berth.dev/berth/internal/sign/attestation"
)

// Shell completion: cobra's own `berth completion bash|zsh|fish|powershell`
// completes commands and flag names; registerCompletions adds the values
// of the flags that take one of a known set, so that `berth scan -f <TAB>`
// offers the formats.

// severityValues are what --severity completes to: the ratings and the
// thresholds (a list is completed item by item after each comma).
var severityValues = []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE", "UNKNOWN", "CRITICAL+", "HIGH+", "MEDIUM+", "LOW+"}

// completionValues gives, for a flag name on a command, the values it
// completes to; nil means none known.
func completionValues(cmd *cobra.Command, flag string) []string {
	switch flag {
	case "format":
		switch cmd.Name() {
		case "scan":
			return report.ReportFormatNames()
		case "sbom":
			return append(report.SBOMFormatNames(), "cyclonedx-json", "spdx-json")
		case "status":
			return []string{"text", "json"}
		}
	case "severity":
		return severityValues
	case "log-format":
		return []string{"text", "json"}
	case "log-level":
		return []string{"debug", "info", "warn", "error"}
	case "platform":
		return []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386", "linux/ppc64le", "linux/s390x"}
	case "role":
		return []string{string(auth.ProjectAdmin), string(auth.Maintainer), string(auth.Developer), string(auth.Guest), string(auth.LimitedGuest)}
	case "type":
		return attestation.Kinds()
	case "attest-type":
		return []string{"cyclonedx", "spdx", "cyclonedx-json", "spdx-json"}
	}
	return nil
}

// keyExtensions are the files --key completes to.
func keyExtensions(cmd *cobra.Command) []string {
	switch cmd.Name() {
	case "verify", "verify-attestation", "verify-blob":
		return []string{"pub", "pem"}
	}
	return []string{"key", "pem"}
}

// registerCompletions walks the command tree and registers value
// completion for every flag completionValues knows.
func registerCompletions(cmd *cobra.Command) {
	register := func(name string, fn cobra.CompletionFunc) {
		// Flags are registered once per command; a persistent flag of a
		// parent is registered on the parent.
		_ = cmd.RegisterFlagCompletionFunc(name, fn)
	}
	seen := map[string]bool{}
	visit := func(flagName string) {
		if seen[flagName] {
			return
		}
		seen[flagName] = true
		if flagName == "key" {
			exts := keyExtensions(cmd)
			register(flagName, func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return exts, cobra.ShellCompDirectiveFilterFileExt
			})
			return
		}
		values := completionValues(cmd, flagName)
		if values == nil {
			return
		}
		list := flagName == "severity"
		register(flagName, func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			prefix := ""
			if list {
				// A list: complete the item after the last comma.
				if i := strings.LastIndex(toComplete, ","); i >= 0 {
					prefix = toComplete[:i+1]
				}
			}
			out := make([]cobra.Completion, 0, len(values))
			for _, v := range values {
				out = append(out, prefix+v)
			}
			directive := cobra.ShellCompDirectiveNoFileComp
			if list {
				directive |= cobra.ShellCompDirectiveNoSpace
			}
			return out, directive
		})
	}
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { visit(f.Name) })
	cmd.PersistentFlags().VisitAll(func(f *pflag.Flag) { visit(f.Name) })
	for _, c := range cmd.Commands() {
		registerCompletions(c)
	}
}
