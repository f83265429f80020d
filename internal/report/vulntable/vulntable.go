// Package vulntable writes a vulnerability report as a table for people:
// one row per finding, grouped by target as Trivy groups them (the OS
// release, a lockfile or binary, the packages of a language installed one
// per directory), the target with the worst finding first and the most
// severe findings first within it, with the package, the installed
// version, the identifiers, the severity, the versions that fix it, the
// short id of the layer that brought the package, and the title. A legend
// below the table says which build step made each layer.
//
// Piped output is plain aligned text in which every row stands alone (its
// target in the first column), so grep and awk can take it apart. On a
// terminal the table gets a title, each target a heading with its count,
// a package is named once for its group of rows, severities are coloured
// when Color is set, columns that would overflow the width are cut with
// "…", and a summary and the suppressed findings follow. Cells are escaped
// as in the SBOM table, so a hostile package name or advisory title cannot
// move the cursor or recolour the terminal.
package vulntable

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/table"
)

const (
	gap            = 2  // spaces between columns
	minColumn      = 8  // never cut a column below this many cells
	readableColumn = 24 // cut names and versions to this before the title
	bold           = "\x1b[1m"
	reset          = "\x1b[0m"
)

// Column indexes, in the order of header.
const (
	colEcosystem = iota
	colPackage
	colVersion
	colID
	colAliases
	colSeverity
	colFixed
	colLayer
	colTitle
)

func header() []string {
	return []string{"ECOSYSTEM", "PACKAGE", "VERSION", "ID", "ALIASES", "SEVERITY", "FIXED IN", "LAYER", "TITLE"}
}

// severityColor is the SGR sequence for each rating, as Trivy colours them.
var severityColor = map[match.Severity]string{
	match.SeverityCritical: "\x1b[1;31m",
	match.SeverityHigh:     "\x1b[31m",
	match.SeverityMedium:   "\x1b[33m",
	match.SeverityLow:      "\x1b[34m",
}

// summaryOrder lists severities worst first.
var summaryOrder = []match.Severity{
	match.SeverityCritical, match.SeverityHigh, match.SeverityMedium,
	match.SeverityLow, match.SeverityNone, match.SeverityUnknown,
}

// Encode writes r to w as a table; opts chooses the plain or the terminal
// layout, as for the SBOM table. It does not modify r.
func Encode(w io.Writer, r *match.Report, opts table.Options) error {
	findings, targets := sortedFindings(r.Findings, r.Inventory.Distro)
	rows := make([][]string, 0, len(findings)+1)
	rows = append(rows, header())
	for i := range findings {
		rows = append(rows, row(&findings[i]))
	}
	if !opts.Terminal {
		// Piped, every row names its target; on a terminal, headings do.
		rows[0] = append([]string{"TARGET"}, rows[0]...)
		for i := range findings {
			rows[i+1] = append([]string{table.Clean(targets[i])}, rows[i+1]...)
		}
	}
	widths := columnWidths(rows)
	if opts.Terminal {
		blankRepeats(rows, targets)
		if opts.Width > 0 {
			fit(widths, opts.Width)
		}
	}

	var sb strings.Builder
	if opts.Terminal {
		sb.WriteString(fitLine(title(&r.Inventory), opts))
		sb.WriteString("\n\n")
	}
	if !scanned(r, "vuln") {
		writeOthers(&sb, r, opts)
		return write(w, sb.String())
	}
	if opts.Terminal && len(findings) == 0 {
		sb.WriteString("No vulnerabilities found.\n")
	} else {
		for i, cells := range rows {
			if opts.Terminal && i > 0 && (i == 1 || targets[i-1] != targets[i-2]) {
				if i > 1 {
					sb.WriteByte('\n')
				}
				heading := fitLine(targetHeading(targets[i-1], findings, targets), opts)
				if opts.Color {
					heading = bold + heading + reset
				}
				sb.WriteString(heading)
				sb.WriteByte('\n')
			}
			line := formatRow(cells, widths, opts, i == 0)
			if i == 0 && opts.Terminal && opts.Color {
				line = bold + line + reset
			}
			sb.WriteString(line)
			sb.WriteByte('\n')
		}
	}
	writeLayers(&sb, &r.Inventory, findings, opts)
	if opts.Terminal {
		writeSuppressed(&sb, r.Suppressed, opts)
		sb.WriteByte('\n')
		sb.WriteString(fitLine(summary(findings, len(r.Suppressed)), opts))
		sb.WriteByte('\n')
	}
	writeOthers(&sb, r, opts)
	return write(w, sb.String())
}

// writeOthers writes the sections of the scanners other than vuln.
func writeOthers(sb *strings.Builder, r *match.Report, opts table.Options) {
	writeSecrets(sb, r, opts)
	writeMisconfig(sb, r, opts)
	writeLicenses(sb, r, opts)
}

func write(w io.Writer, s string) error {
	if _, err := io.WriteString(w, s); err != nil {
		return fmt.Errorf("write vulnerability table: %w", err)
	}
	return nil
}

// sortedFindings orders findings by target, the target with the worst
// finding first (then by name), and within a target worst first, then by
// package as every berth report lists packages, then by id. It returns
// each finding's target beside it.
func sortedFindings(in []match.Finding, d *inventory.Distro) ([]match.Finding, []string) {
	type item struct {
		f      match.Finding
		target string
	}
	items := make([]item, len(in))
	worst := map[string]int{}
	for i, f := range in {
		t := target(&f.Package, d)
		items[i] = item{f, t}
		worst[t] = max(worst[t], f.Severity.Rank())
	}
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(
			cmp.Compare(worst[b.target], worst[a.target]),
			strings.Compare(a.target, b.target),
			cmp.Compare(b.f.Severity.Rank(), a.f.Severity.Rank()),
			bom.Compare(&a.f.Package, &b.f.Package),
			cmp.Compare(a.f.ID, b.f.ID),
		)
	})
	findings, targets := make([]match.Finding, len(items)), make([]string, len(items))
	for i, it := range items {
		findings[i], targets[i] = it.f, it.target
	}
	return findings, targets
}

// installedLabels name the targets of packages installed one per
// directory (each with its own metadata file), which Trivy groups by
// language rather than listing every package.json as a target.
var installedLabels = map[string]string{
	"npm-installed":    "Node.js",
	"python-installed": "Python",
	"python-egg":       "Python",
	"gemspec":          "Ruby",
	"java-archive":     "Java",
	"conda-meta":       "Conda",
}

// target names the group a package's findings are listed under, as
// Trivy's table titles them: the OS release for OS packages ("debian 12
// (deb)"), a language for packages installed one per directory ("Node.js
// (npm)"), else the file that declares the package, a lockfile or a
// binary ("app/package-lock.json (npm)", "usr/local/bin/app (golang)").
func target(p *inventory.Package, d *inventory.Distro) string {
	eco := string(p.Ecosystem)
	switch p.Ecosystem {
	case inventory.Deb, inventory.APK, inventory.RPM:
		if d != nil && d.ID != "" {
			return strings.TrimSpace(d.ID+" "+d.VersionID) + " (" + eco + ")"
		}
		return "OS packages (" + eco + ")"
	}
	if label, ok := installedLabels[p.Analyzer]; ok {
		return label + " (" + eco + ")"
	}
	if len(p.Locations) > 0 {
		return strings.TrimPrefix(p.Locations[0], "/") + " (" + eco + ")"
	}
	return eco
}

// targetHeading is a target's heading on a terminal: its name and what
// was found in it, worst first.
func targetHeading(target string, findings []match.Finding, targets []string) string {
	var in []match.Finding
	for i := range findings {
		if targets[i] == target {
			in = append(in, findings[i])
		}
	}
	return table.Clean(target) + ": " + summary(in, 0)
}

func row(f *match.Finding) []string {
	t := f.Summary
	switch {
	case f.Uncertain:
		t = "[uncertain] " + t
	case f.VEX != nil:
		t = "[vex: " + f.VEX.Status + "] " + t
	}
	return []string{
		table.Clean(string(f.Package.Ecosystem)),
		table.Clean(f.Package.Name),
		table.Clean(f.Package.Version),
		table.Clean(f.ID),
		table.Clean(strings.Join(f.Aliases, ",")),
		string(f.Severity),
		table.Clean(strings.Join(f.FixedVersions, ", ")),
		table.ShortLayer(f.Package.Layer),
		table.Clean(strings.TrimSpace(t)),
	}
}

// blankRepeats writes a package's ecosystem, name, version and layer only
// on the first row of its group within a target, as a person reads a
// grouped table.
func blankRepeats(rows [][]string, targets []string) {
	for i := len(rows) - 1; i >= 2; i-- {
		cur, prev := rows[i], rows[i-1]
		if targets[i-1] == targets[i-2] && cur[colEcosystem] == prev[colEcosystem] && cur[colPackage] == prev[colPackage] &&
			cur[colVersion] == prev[colVersion] && cur[colLayer] == prev[colLayer] {
			cur[colEcosystem], cur[colPackage], cur[colVersion], cur[colLayer] = "", "", "", ""
		}
	}
}

func columnWidths(rows [][]string) []int {
	widths := make([]int, len(rows[0]))
	for _, cells := range rows {
		for c, s := range cells {
			widths[c] = max(widths[c], table.Width(s))
		}
	}
	return widths
}

// fit narrows the free-text columns until the table fits termWidth, in
// the order a reader misses them least: the aliases first, then long
// names, versions and fixed versions (down to a common cap of
// readableColumn), then the title, then those three again down to
// minColumn, and last the ID (real ones are short; a record can carry any
// string). If even that does not fit, the terminal wraps.
func fit(widths []int, termWidth int) {
	total := func() int {
		t := gap * (len(widths) - 1)
		for _, w := range widths {
			t += w
		}
		return t
	}
	shrink := func(c int) {
		if over := total() - termWidth; over > 0 && widths[c] > minColumn {
			widths[c] = max(minColumn, widths[c]-over)
		}
	}
	flexible := []int{colPackage, colVersion, colFixed}
	natural := slices.Clone(widths)
	capFlexible := func(floor int) {
		for limit := slices.Max(natural); limit > floor && total() > termWidth; limit-- {
			for _, c := range flexible {
				widths[c] = min(natural[c], limit)
			}
		}
	}
	shrink(colAliases)
	capFlexible(readableColumn)
	shrink(colTitle)
	capFlexible(minColumn)
	shrink(colID)
}

func formatRow(cells []string, widths []int, opts table.Options, isHeader bool) string {
	var b strings.Builder
	for c, s := range cells {
		s = table.Truncate(s, widths[c])
		pad := widths[c] - table.Width(s)
		if c == colSeverity && !isHeader && opts.Terminal && opts.Color && severityColor[match.Severity(s)] != "" {
			s = severityColor[match.Severity(s)] + s + reset
		}
		b.WriteString(s)
		if c < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", pad+gap))
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// writeLayers is the legend of the LAYER column: each layer that brought
// a vulnerable package, with the build step that made it.
func writeLayers(sb *strings.Builder, inv *inventory.Inventory, findings []match.Finding, opts table.Options) {
	used := map[string]bool{}
	for i := range findings {
		used[findings[i].Package.Layer] = true
	}
	var rows [][2]string
	for _, l := range inv.Layers {
		if used[l.DiffID] && l.DiffID != "" {
			rows = append(rows, [2]string{table.ShortLayer(l.DiffID), table.Clean(cmp.Or(l.CreatedBy, "(no history)"))})
			used[l.DiffID] = false
		}
	}
	if len(rows) == 0 {
		return
	}
	width := len("LAYER")
	for _, r := range rows {
		width = max(width, table.Width(r[0]))
	}
	sb.WriteByte('\n')
	head := "LAYER" + strings.Repeat(" ", width-len("LAYER")+gap) + "CREATED BY"
	if opts.Terminal && opts.Color {
		head = bold + head + reset
	}
	sb.WriteString(head)
	sb.WriteByte('\n')
	for _, r := range rows {
		line := r[0] + strings.Repeat(" ", width-table.Width(r[0])+gap) + r[1]
		sb.WriteString(fitLine(line, opts))
		sb.WriteByte('\n')
	}
}

// writeSuppressed lists what an ignore file or VEX statement removed, so
// a person sees that something was accepted and why.
func writeSuppressed(sb *strings.Builder, sup []match.Suppressed, opts table.Options) {
	if len(sup) == 0 {
		return
	}
	sb.WriteString("\nSuppressed:\n")
	for _, s := range sup {
		f := &s.Finding
		line := fmt.Sprintf("  %s in %s %s: %s", table.Clean(f.ID), table.Clean(f.Package.Name), table.Clean(f.Package.Version), reason(&s))
		sb.WriteString(fitLine(line, opts))
		sb.WriteByte('\n')
	}
}

func reason(s *match.Suppressed) string {
	var parts []string
	switch {
	case s.IgnoreEntry != nil:
		parts = append(parts, "ignored by "+s.IgnoreEntry.Where)
		if s.IgnoreEntry.Reason != "" {
			parts = append(parts, s.IgnoreEntry.Reason)
		}
		if !s.IgnoreEntry.Expires.IsZero() {
			parts = append(parts, "until "+s.IgnoreEntry.Expires.Format("2006-01-02"))
		}
	case s.Statement != nil:
		st := s.Statement
		parts = append(parts, "VEX "+st.Status)
		if st.Justification != "" {
			parts = append(parts, st.Justification)
		}
		if st.ImpactStatement != "" {
			parts = append(parts, st.ImpactStatement)
		}
		parts = append(parts, "("+st.Document+")")
	default:
		parts = append(parts, "by "+s.By)
	}
	return table.Clean(strings.Join(parts, ", "))
}

func title(inv *inventory.Inventory) string {
	// The title needs the image's identity only; building it from the
	// packages too would sort them for nothing.
	return table.Title(bom.Build(&inventory.Inventory{Source: inv.Source, Digest: inv.Digest, Distro: inv.Distro}))
}

// summary counts the findings shown, worst first.
func summary(findings []match.Finding, suppressed int) string {
	counts := map[match.Severity]int{}
	for i := range findings {
		counts[findings[i].Severity]++
	}
	var parts []string
	for _, s := range summaryOrder {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	var line string
	switch len(findings) {
	case 0:
		line = "0 vulnerabilities"
	case 1:
		line = "1 vulnerability: " + strings.Join(parts, ", ")
	default:
		line = fmt.Sprintf("%d vulnerabilities: %s", len(findings), strings.Join(parts, ", "))
	}
	if suppressed > 0 {
		line += fmt.Sprintf("; %d suppressed", suppressed)
	}
	return line
}

func fitLine(s string, opts table.Options) string {
	if opts.Terminal && opts.Width > 0 {
		return table.Truncate(s, opts.Width)
	}
	return s
}
