package vulntable

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/table"
	"berth.dev/berth/internal/secret"
)

// scanned reports whether the report's scan ran the named scanner: a
// report without Scanners is a vulnerability scan.
func scanned(r *match.Report, name string) bool {
	if len(r.Scanners) == 0 {
		return name == "vuln"
	}
	return slices.Contains(r.Scanners, name)
}

// writeSecrets is the secrets section: one row per secret, worst first,
// with where it is (a file and line, an entry name, an Env variable, a
// label, a history entry), the layer, whether a later layer deleted the
// file, and the masked match. Allowed ones (documentation examples) are
// listed after, with the reason.
func writeSecrets(sb *strings.Builder, r *match.Report, opts table.Options) {
	if !scanned(r, "secret") {
		return
	}
	var shown, allowed []secret.Finding
	for _, f := range r.Secrets {
		if f.Allowed != "" {
			allowed = append(allowed, f)
		} else {
			shown = append(shown, f)
		}
	}
	slices.SortStableFunc(shown, func(a, b secret.Finding) int {
		return cmp.Compare(secret.SeverityRank(a.Severity), secret.SeverityRank(b.Severity))
	})
	if sb.Len() > 0 {
		sb.WriteByte('\n')
	}
	if opts.Terminal {
		sb.WriteString(bolded("Secrets", opts))
		sb.WriteString("\n\n")
	}
	if len(shown) == 0 && opts.Terminal {
		sb.WriteString("No secrets found.\n")
	}
	if len(shown) > 0 {
		rows := [][]string{{"SEVERITY", "RULE", "WHERE", "LAYER", "STATUS", "MATCH"}}
		for _, f := range shown {
			rows = append(rows, secretRow(f))
		}
		writeSimpleTable(sb, rows, 0, opts)
	}
	if len(allowed) > 0 {
		sb.WriteString("\nAllowed:\n")
		for _, f := range allowed {
			line := fmt.Sprintf("  %s in %s: %s", table.Clean(f.RuleID), table.Clean(where(f)), table.Clean(f.Allowed))
			sb.WriteString(fitLine(line, opts))
			sb.WriteByte('\n')
		}
	}
	if opts.Terminal {
		counts := map[string]int{}
		for _, f := range shown {
			counts[f.Severity]++
		}
		var parts []string
		for _, s := range []string{secret.SeverityCritical, secret.SeverityHigh, secret.SeverityMedium, secret.SeverityLow} {
			if n := counts[s]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", s, n))
			}
		}
		line := fmt.Sprintf("%d secrets", len(shown))
		if len(parts) > 0 {
			line += ": " + strings.Join(parts, ", ")
		}
		if len(allowed) > 0 {
			line += fmt.Sprintf("; %d allowed", len(allowed))
		}
		sb.WriteByte('\n')
		sb.WriteString(fitLine(line, opts))
		sb.WriteByte('\n')
	}
}

func secretRow(f secret.Finding) []string {
	status := "present"
	switch {
	case f.RemovedBy != "":
		status = "deleted in " + table.ShortLayer(f.RemovedBy)
	case f.Kind == secret.KindEnv || f.Kind == secret.KindLabel || f.Kind == secret.KindHistory:
		status = "in config"
	}
	return []string{f.Severity, table.Clean(f.RuleID), table.Clean(where(f)), table.ShortLayer(f.Layer), status, table.Clean(f.Match)}
}

// where names the place of a secret as a person looks for it.
func where(f secret.Finding) string {
	switch f.Kind {
	case secret.KindFile:
		if f.StartLine > 0 {
			return "/" + f.Path + ":" + strconv.Itoa(f.StartLine)
		}
		return "/" + f.Path
	case secret.KindName:
		return "name /" + f.Path
	case secret.KindEnv:
		return "Env " + f.Path
	case secret.KindLabel:
		return "label " + f.Path
	case secret.KindHistory:
		if f.History != nil {
			return "history #" + strconv.Itoa(*f.History)
		}
		return "history"
	}
	return f.Path
}

// writeSimpleTable writes rows aligned, the last column uncut unless the
// terminal is too narrow; severity (column sevCol) coloured on a terminal.
func writeSimpleTable(sb *strings.Builder, rows [][]string, sevCol int, opts table.Options) {
	widths := columnWidths(rows)
	for i, cells := range rows {
		var b strings.Builder
		for c, s := range cells {
			pad := widths[c] - table.Width(s)
			if c == sevCol && i > 0 && opts.Terminal && opts.Color && severityColor[match.Severity(s)] != "" {
				s = severityColor[match.Severity(s)] + s + reset
			}
			b.WriteString(s)
			if c < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", pad+gap))
			}
		}
		line := fitLine(strings.TrimRight(b.String(), " "), opts)
		if i == 0 {
			line = bolded(line, opts)
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
}

func bolded(s string, opts table.Options) string {
	if opts.Terminal && opts.Color {
		return bold + s + reset
	}
	return s
}
