package vulntable

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/table"
)

// writeLicenses is the license section: policy violations and every
// package whose license is not permissive, worst class first; the
// permissive ones are counted.
func writeLicenses(sb *strings.Builder, r *match.Report, opts table.Options) {
	if !scanned(r, "license") {
		return
	}
	var rows [][]string
	counts := map[licensepolicy.Class]int{}
	ls := slices.Clone(r.Licenses)
	slices.SortStableFunc(ls, func(a, b licensepolicy.Finding) int {
		return cmp.Or(
			cmp.Compare(violates(b), violates(a)),
			cmp.Compare(slices.Index(licensepolicy.Classes, b.Class), slices.Index(licensepolicy.Classes, a.Class)),
			cmp.Compare(a.Ecosystem, b.Ecosystem), cmp.Compare(a.Name, b.Name))
	})
	for _, l := range ls {
		counts[l.Class]++
		if l.Class == licensepolicy.Permissive && l.Violation == "" {
			continue
		}
		rows = append(rows, []string{l.Severity, table.Clean(l.Ecosystem), table.Clean(l.Name), table.Clean(l.Version),
			table.Truncate(table.Clean(cmp.Or(l.License, "(none declared)")), 60), string(l.Class), table.Truncate(table.Clean(l.Violation), 80)})
	}
	if sb.Len() > 0 {
		sb.WriteByte('\n')
	}
	if opts.Terminal {
		sb.WriteString(bolded("Licenses", opts))
		sb.WriteString("\n\n")
	}
	if len(rows) > 0 {
		writeSimpleTable(sb, append([][]string{{"SEVERITY", "ECOSYSTEM", "PACKAGE", "VERSION", "LICENSE", "CLASS", "POLICY"}}, rows...), 0, opts)
	}
	var parts []string
	for _, c := range licensepolicy.Classes {
		if n := counts[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	line := fmt.Sprintf("%d packages", len(r.Licenses))
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	if n := licensepolicy.Violations(r.Licenses); n > 0 {
		line += fmt.Sprintf("; %d violate the license policy", n)
	}
	if len(rows) > 0 {
		sb.WriteByte('\n')
	}
	sb.WriteString(fitLine(line, opts))
	sb.WriteByte('\n')
}

func violates(l licensepolicy.Finding) int {
	if l.Violation != "" {
		return 1
	}
	return 0
}
