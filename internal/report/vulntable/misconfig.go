package vulntable

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/report/table"
)

// writeMisconfig is the misconfiguration section: one row per failed
// check, worst first, with the evidence, and each rule's fix below.
func writeMisconfig(sb *strings.Builder, r *match.Report, opts table.Options) {
	if !scanned(r, "misconfig") {
		return
	}
	fs := slices.Clone(r.Misconfigurations)
	slices.SortStableFunc(fs, func(a, b misconfig.Finding) int {
		return cmp.Or(cmp.Compare(misconfig.SeverityRank(a.Severity), misconfig.SeverityRank(b.Severity)), cmp.Compare(a.ID, b.ID))
	})
	if sb.Len() > 0 {
		sb.WriteByte('\n')
	}
	if opts.Terminal {
		sb.WriteString(bolded("Misconfigurations", opts))
		sb.WriteString("\n\n")
		if len(fs) == 0 {
			sb.WriteString("No misconfigurations found.\n")
			return
		}
	}
	if len(fs) == 0 {
		return
	}
	layers := slices.ContainsFunc(fs, func(f misconfig.Finding) bool { return f.Layer != "" })
	head := []string{"SEVERITY", "ID", "TITLE", "WHERE", "LAYER", "EVIDENCE"}
	if !layers {
		head = slices.Delete(head, 4, 5)
	}
	rows := [][]string{head}
	var ids []string
	for _, f := range fs {
		where := f.Target
		if f.Line > 0 {
			where += ":" + strconv.Itoa(f.Line)
		}
		row := []string{f.Severity, f.ID, table.Clean(f.Title), table.Clean(where), table.ShortLayer(f.Layer), table.Clean(f.Evidence)}
		if !layers {
			row = slices.Delete(row, 4, 5)
		}
		rows = append(rows, row)
		if !slices.Contains(ids, f.ID) {
			ids = append(ids, f.ID)
		}
	}
	writeSimpleTable(sb, rows, 0, opts)
	sb.WriteString("\nFixes:\n")
	for _, id := range ids {
		if rule, ok := misconfig.Lookup(id); ok {
			sb.WriteString(fitLine(fmt.Sprintf("  %s: %s", id, rule.Fix), opts))
			sb.WriteByte('\n')
		}
	}
}

// EncodeLint writes Dockerfile lint findings (`berth lint`) as the
// misconfiguration table.
func EncodeLint(w io.Writer, fs []misconfig.Finding, opts table.Options) error {
	var sb strings.Builder
	writeMisconfig(&sb, &match.Report{Scanners: []string{"misconfig"}, Misconfigurations: fs}, opts)
	if len(fs) == 0 && !opts.Terminal {
		sb.WriteString("No misconfigurations found.\n")
	}
	return write(w, sb.String())
}
