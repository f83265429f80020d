// Package table writes an inventory as a table for people: one row per
// package with its ecosystem, name, version, source package, the short id
// of the layer that added it, and where it was found.
//
// Piped output is plain aligned text that grep and awk can take apart. On a
// terminal the table gets a title and a summary line, columns that would
// overflow the width are cut with "…", and, when Color is set, the header
// is bold. Control characters in package data are always escaped, so a
// hostile package name cannot move the cursor or recolour the terminal.
package table

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
)

// Options choose between the plain and the terminal layout.
type Options struct {
	// Terminal selects the terminal layout: title, summary and columns
	// fitted to Width.
	Terminal bool
	// Width is the terminal width in cells; 0 means do not fit.
	Width int
	// Color makes the header bold (terminal layout only).
	Color bool
}

const (
	gap       = 2 // spaces between columns
	ellipsis  = "…"
	bold      = "\x1b[1m"
	reset     = "\x1b[0m"
	minColumn = 8 // never cut a column below this many cells
)

func header() []string {
	return []string{"ECOSYSTEM", "NAME", "VERSION", "SOURCE", "LAYER", "LOCATION"}
}

// Column indexes, in the order of header.
const (
	colName     = 1
	colVersion  = 2
	colSource   = 3
	colLocation = 5
)

// Encode writes inv to w as a table.
func Encode(w io.Writer, inv *inventory.Inventory, opts Options) error {
	b := bom.Build(inv)
	rows := make([][]string, 0, len(b.Packages)+1)
	rows = append(rows, header())
	for i := range b.Packages {
		rows = append(rows, row(&b.Packages[i].Package))
	}
	widths := columnWidths(rows)
	if opts.Terminal && opts.Width > 0 {
		fit(widths, opts.Width)
	}

	var sb strings.Builder
	if opts.Terminal {
		t := title(b)
		if opts.Width > 0 {
			t = truncate(t, opts.Width)
		}
		sb.WriteString(t)
		sb.WriteString("\n\n")
	}
	for r, cells := range rows {
		line := formatRow(cells, widths)
		if r == 0 && opts.Terminal && opts.Color {
			line = bold + line + reset
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
	if opts.Terminal {
		sb.WriteByte('\n')
		sb.WriteString(summary(b))
		sb.WriteByte('\n')
	}
	if _, err := io.WriteString(w, sb.String()); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func row(p *inventory.Package) []string {
	return []string{
		clean(string(p.Ecosystem)),
		clean(p.Name),
		clean(p.Version),
		clean(source(p)),
		shortLayer(p.Layer),
		clean(location(p.Locations)),
	}
}

// source shows the source package only where it says something the name
// and version do not.
func source(p *inventory.Package) string {
	switch {
	case p.SourceName == "" || p.SourceName == p.Name && (p.SourceVersion == p.Version || p.SourceVersion == ""):
		return ""
	case p.SourceVersion == "" || p.SourceVersion == p.Version:
		return p.SourceName
	default:
		return p.SourceName + " " + p.SourceVersion
	}
}

// shortLayer is the first 12 hex digits of a diffID, as docker shows ids.
func shortLayer(diffID string) string {
	_, hex, found := strings.Cut(diffID, ":")
	if !found {
		hex = diffID
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return clean(hex)
}

func location(locs []string) string {
	switch len(locs) {
	case 0:
		return ""
	case 1:
		return locs[0]
	default:
		return fmt.Sprintf("%s (+%d)", locs[0], len(locs)-1)
	}
}

// clean escapes control characters the way Go quotes them ("\t", "\x1b"),
// and bidi controls as "\u202e" so a name cannot reorder what is shown
// after it, and replaces invalid UTF-8, so every cell is printable text of
// the width it appears to have.
func clean(s string) string {
	if !strings.ContainsFunc(s, needsEscape) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if needsEscape(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

func columnWidths(rows [][]string) []int {
	widths := make([]int, len(rows[0]))
	for _, cells := range rows {
		for c, s := range cells {
			widths[c] = max(widths[c], width(s))
		}
	}
	return widths
}

// width is the number of terminal cells s takes. Package data is nearly
// always printable ASCII, one cell per byte; only the rest needs uniseg's
// grapheme segmentation, which is far slower.
func width(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return uniseg.StringWidth(s)
		}
	}
	return len(s)
}

// fit narrows the free-text columns (name, version, source, location)
// until the table fits termWidth: it caps them all at one common width, as
// high as fits, so the widest columns give up the most and short ones
// stay whole. No column goes below minColumn; if even that does not fit,
// the terminal wraps.
func fit(widths []int, termWidth int) {
	flexible := []int{colName, colVersion, colSource, colLocation}
	natural := slices.Clone(widths)
	total := func(limit int) int {
		t := gap * (len(widths) - 1)
		for c, w := range natural {
			if slices.Contains(flexible, c) {
				w = min(w, limit)
			}
			t += w
		}
		return t
	}
	limit := slices.Max(natural)
	for limit > minColumn && total(limit) > termWidth {
		limit--
	}
	for _, c := range flexible {
		widths[c] = min(natural[c], limit)
	}
}

func formatRow(cells []string, widths []int) string {
	var b strings.Builder
	for c, s := range cells {
		s = truncate(s, widths[c])
		b.WriteString(s)
		if c < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", widths[c]-width(s)+gap))
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// truncate cuts s to limit cells, ending in an ellipsis, without splitting
// a grapheme cluster.
func truncate(s string, limit int) string {
	if width(s) <= limit {
		return s
	}
	var b strings.Builder
	used := 0
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		w := g.Width()
		if used+w > limit-1 {
			break
		}
		b.WriteString(g.Str())
		used += w
	}
	return b.String() + ellipsis
}

func title(b *bom.BOM) string {
	parts := []string{clean(b.Image.Name)}
	if v := b.Image.Version; v != "" && v != b.Image.Digest {
		parts[0] += ":" + clean(v)
	}
	if d := b.Inventory.Distro; d != nil {
		parts = append(parts, "("+clean(strings.TrimSpace(d.ID+" "+d.VersionID))+")")
	}
	if b.Image.Digest != "" {
		parts = append(parts, clean(b.Image.Digest))
	}
	return strings.Join(parts, " ")
}

// summary counts packages per ecosystem, largest first.
func summary(b *bom.BOM) string {
	counts := map[string]int{}
	for i := range b.Packages {
		counts[clean(cmp.Or(string(b.Packages[i].Ecosystem), "unknown"))]++
	}
	ecos := slices.SortedFunc(maps.Keys(counts), func(x, y string) int {
		return cmp.Or(cmp.Compare(counts[y], counts[x]), cmp.Compare(x, y))
	})
	noun := "packages"
	if len(b.Packages) == 1 {
		noun = "package"
	}
	if len(ecos) == 0 {
		return "0 packages"
	}
	parts := make([]string, len(ecos))
	for i, e := range ecos {
		parts[i] = fmt.Sprintf("%d %s", counts[e], e)
	}
	return fmt.Sprintf("%d %s: %s", len(b.Packages), noun, strings.Join(parts, ", "))
}
