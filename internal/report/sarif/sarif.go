// Package sarif writes a vulnerability report as a SARIF 2.1.0 log that
// GitHub code scanning accepts.
//
// Each vulnerability id is one rule (reportingDescriptor) with its summary,
// help text (Markdown and plain), the advisory link and GitHub's
// "security-severity" property (the CVSS base score behind the rating, or
// a score inside the rating's band when the rating came from elsewhere).
// Each finding is one result of that rule, located at the file that
// declares the package inside the image (the lockfile, the dpkg status
// file, the binary), relative to the image root "ROOTPATH". Findings an
// ignore file or VEX statement suppressed are results too, carrying a SARIF
// suppression with the reason, so the log says what was accepted.
//
// The types below are the subset of the SARIF object model berth writes;
// the tests validate every document against the official JSON schema.
package sarif

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/internal/indentjson"
)

// MediaType is the registered media type of SARIF.
const MediaType = "application/sarif+json"

// SchemaURI is the $id of the SARIF 2.1.0 JSON schema.
const SchemaURI = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"

// rootBase names the image's root filesystem, against which result
// locations are relative.
const rootBase = "ROOTPATH"

// Meta is what the log says about the tool.
type Meta struct {
	ToolVersion string
	// InformationURI is where people learn about the tool.
	InformationURI string
}

type log struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []run  `json:"runs"`
}

type run struct {
	Tool               tool                   `json:"tool"`
	OriginalURIBaseIDs map[string]artifactLoc `json:"originalUriBaseIds"`
	Results            []result               `json:"results"`
	ColumnKind         string                 `json:"columnKind"`
	Properties         map[string]any         `json:"properties,omitempty"`
}

type tool struct {
	Driver driver `json:"driver"`
}

type driver struct {
	Name           string `json:"name"`
	Version        string `json:"version,omitempty"`
	InformationURI string `json:"informationUri,omitempty"`
	Rules          []rule `json:"rules"`
}

type rule struct {
	ID                   string        `json:"id"`
	Name                 string        `json:"name"`
	ShortDescription     text          `json:"shortDescription"`
	FullDescription      text          `json:"fullDescription"`
	HelpURI              string        `json:"helpUri,omitempty"`
	Help                 help          `json:"help"`
	DefaultConfiguration configuration `json:"defaultConfiguration"`
	Properties           ruleProps     `json:"properties"`
}

type text struct {
	Text string `json:"text"`
}

type help struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown"`
}

type configuration struct {
	Level string `json:"level"`
}

type ruleProps struct {
	// SecuritySeverity is GitHub's: a score from 0.0 to 10.0 as a string.
	SecuritySeverity string   `json:"security-severity"`
	Precision        string   `json:"precision"`
	Tags             []string `json:"tags"`
}

type result struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             text              `json:"message"`
	Locations           []location        `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Suppressions        []suppression     `json:"suppressions,omitempty"`
	Properties          map[string]any    `json:"properties"`
}

type location struct {
	PhysicalLocation physicalLocation `json:"physicalLocation"`
	Message          *text            `json:"message,omitempty"`
}

type physicalLocation struct {
	ArtifactLocation artifactLoc `json:"artifactLocation"`
	Region           region      `json:"region"`
}

type artifactLoc struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

// region points at the start of the file: a package is declared by the
// file as a whole, and GitHub wants a line to show.
type region struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn"`
	EndLine     int `json:"endLine"`
	EndColumn   int `json:"endColumn"`
}

type suppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification,omitempty"`
}

// Encode writes r to w as an indented SARIF 2.1.0 log. It does not modify
// r.
func Encode(w io.Writer, r *match.Report, meta Meta) error {
	if err := indentjson.Encode(w, build(r, meta)); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}

// entry is one finding to write, with its suppression if it has one.
type entry struct {
	f   *match.Finding
	sup *match.Suppressed
}

func build(r *match.Report, meta Meta) *log {
	entries := make([]entry, 0, len(r.Findings)+len(r.Suppressed))
	for i := range r.Findings {
		entries = append(entries, entry{f: &r.Findings[i]})
	}
	for i := range r.Suppressed {
		entries = append(entries, entry{f: &r.Suppressed[i].Finding, sup: &r.Suppressed[i]})
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.f.ID, b.f.ID), bom.Compare(&a.f.Package, &b.f.Package))
	})

	layers := map[string]inventory.Layer{}
	for _, l := range r.Inventory.Layers {
		layers[l.DiffID] = l
	}
	image := imageName(&r.Inventory)

	var rules []rule
	ruleIndex := map[string]int{}
	results := make([]result, 0, len(entries))
	for start := 0; start < len(entries); {
		end := start + 1
		for end < len(entries) && entries[end].f.ID == entries[start].f.ID {
			end++
		}
		ruleIndex[entries[start].f.ID] = len(rules)
		rules = append(rules, makeRule(entries[start:end]))
		start = end
	}
	for _, e := range entries {
		results = append(results, makeResult(e, ruleIndex[e.f.ID], layers, image))
	}
	rules, results = addSecrets(r, rules, results, image)
	rules, results = addMisconfig(r, rules, results, image)
	rules, results = addLicenses(r, rules, results, image)
	if rules == nil {
		rules = []rule{}
	}

	props := map[string]any{}
	addProp(props, "imageName", image)
	addProp(props, "imageSource", r.Inventory.Source)
	addProp(props, "imageDigest", r.Inventory.Digest)
	addProp(props, "configDigest", r.Inventory.ConfigDigest)
	if d := r.Inventory.Distro; d != nil {
		addProp(props, "distro", strings.TrimSpace(d.ID+" "+d.VersionID))
	}
	return &log{
		Schema:  SchemaURI,
		Version: "2.1.0",
		Runs: []run{{
			Tool: tool{Driver: driver{
				Name:           "berth",
				Version:        meta.ToolVersion,
				InformationURI: meta.InformationURI,
				Rules:          rules,
			}},
			OriginalURIBaseIDs: map[string]artifactLoc{rootBase: {URI: "file:///"}},
			Results:            results,
			ColumnKind:         "utf16CodeUnits",
			Properties:         props,
		}},
	}
}

// makeRule describes one vulnerability from its findings (one per
// affected package), which share the id.
func makeRule(es []entry) rule {
	first := es[0].f
	worst := first
	for _, e := range es[1:] {
		if e.f.Severity.Rank() > worst.Severity.Rank() {
			worst = e.f
		}
	}
	summary := cmp.Or(strings.TrimSpace(first.Summary), first.ID)
	link := advisoryURL(first)
	var md, plain strings.Builder
	fmt.Fprintf(&md, "**%s**: %s\n\n", escapeMarkdown(first.ID), escapeMarkdown(summary))
	fmt.Fprintf(&plain, "%s: %s\n\n", printable(first.ID), printable(summary))
	if len(first.Aliases) > 0 {
		fmt.Fprintf(&md, "Also known as %s.\n\n", escapeMarkdown(strings.Join(first.Aliases, ", ")))
		fmt.Fprintf(&plain, "Also known as %s.\n\n", printable(strings.Join(first.Aliases, ", ")))
	}
	fmt.Fprintf(&md, "Severity: %s%s\n\n", worst.Severity, sourceNote(worst))
	fmt.Fprintf(&plain, "Severity: %s%s\n\n", worst.Severity, sourceNote(worst))
	md.WriteString("| Package | Installed | Fixed in |\n| --- | --- | --- |\n")
	plain.WriteString("Affected packages:\n")
	seen := map[string]bool{}
	for _, e := range es {
		p := &e.f.Package
		key := p.PURL + "\x00" + string(p.Ecosystem) + "\x00" + p.Name + "\x00" + p.Version
		if seen[key] {
			continue
		}
		seen[key] = true
		fixed := cmp.Or(strings.Join(e.f.FixedVersions, ", "), "no fix yet")
		fmt.Fprintf(&md, "| %s (%s) | %s | %s |\n", escapeMarkdown(p.Name), escapeMarkdown(string(p.Ecosystem)), escapeMarkdown(p.Version), escapeMarkdown(fixed))
		fmt.Fprintf(&plain, "  %s %s (%s): fixed in %s\n", printable(p.Name), printable(p.Version), printable(string(p.Ecosystem)), printable(fixed))
	}
	if len(first.References) > 0 {
		md.WriteString("\nReferences:\n")
		plain.WriteString("\nReferences:\n")
		for _, ref := range first.References {
			fmt.Fprintf(&md, "- %s\n", markdownLink(ref))
			fmt.Fprintf(&plain, "  %s\n", printable(ref))
		}
	}
	return rule{
		ID:               first.ID,
		Name:             ruleName(first.ID),
		ShortDescription: text{Text: first.ID + ": " + summary},
		FullDescription:  text{Text: summary},
		HelpURI:          link,
		Help:             help{Text: strings.TrimRight(plain.String(), "\n"), Markdown: strings.TrimRight(md.String(), "\n")},
		DefaultConfiguration: configuration{
			Level: level(worst.Severity),
		},
		Properties: ruleProps{
			SecuritySeverity: securitySeverity(worst),
			Precision:        "very-high",
			Tags:             []string{"vulnerability", "security", string(worst.Severity)},
		},
	}
}

func makeResult(e entry, idx int, layers map[string]inventory.Layer, image string) result {
	f := e.f
	p := &f.Package
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s %s (%s) is affected by %s (%s)", p.Name, p.Version, p.Ecosystem, f.ID, f.Severity)
	if s := strings.TrimSpace(f.Summary); s != "" {
		msg.WriteString(": " + s)
	}
	msg.WriteString(".")
	if len(f.FixedVersions) > 0 {
		fmt.Fprintf(&msg, " Fixed in %s.", strings.Join(f.FixedVersions, ", "))
	} else {
		msg.WriteString(" No fixed version is known.")
	}
	l, hasLayer := layers[p.Layer]
	if p.Layer != "" {
		fmt.Fprintf(&msg, " Installed by layer %s", shortDigest(p.Layer))
		if hasLayer && l.CreatedBy != "" {
			fmt.Fprintf(&msg, " (%s)", l.CreatedBy)
		}
		msg.WriteString(".")
	}
	if f.Uncertain {
		fmt.Fprintf(&msg, " Uncertain: %s.", f.UncertainReason)
	}

	var locs []location
	for _, file := range p.Locations {
		locs = append(locs, fileLocation(strings.TrimPrefix(file, "/"), rootBase, p))
	}
	if len(locs) == 0 {
		// GitHub needs a location; the image itself is the best there is.
		locs = append(locs, fileLocation(image, "", p))
	}

	props := map[string]any{}
	addProp(props, "purl", p.PURL)
	addProp(props, "ecosystem", string(p.Ecosystem))
	addProp(props, "packageName", p.Name)
	addProp(props, "installedVersion", p.Version)
	if len(f.FixedVersions) > 0 {
		props["fixedVersions"] = f.FixedVersions
	}
	addProp(props, "severity", string(f.Severity))
	addProp(props, "layerDiffID", p.Layer)
	if hasLayer {
		addProp(props, "layerCreatedBy", l.CreatedBy)
	}
	if f.VEX != nil {
		addProp(props, "vexStatus", f.VEX.Status)
	}

	res := result{
		RuleID:              f.ID,
		RuleIndex:           idx,
		Level:               level(f.Severity),
		Message:             text{Text: printable(msg.String())},
		Locations:           locs,
		PartialFingerprints: map[string]string{"berthFinding/v1": fingerprint(f)},
		Properties:          props,
	}
	if e.sup != nil {
		res.Suppressions = []suppression{{Kind: "external", Status: "accepted", Justification: justification(e.sup)}}
	}
	return res
}

func fileLocation(path, base string, p *inventory.Package) location {
	u := (&url.URL{Path: path}).String()
	return location{
		PhysicalLocation: physicalLocation{
			ArtifactLocation: artifactLoc{URI: u, URIBaseID: base},
			Region:           region{StartLine: 1, StartColumn: 1, EndLine: 1, EndColumn: 1},
		},
		Message: locationMessage(path, p),
	}
}

func locationMessage(path string, p *inventory.Package) *text {
	if p == nil {
		return nil
	}
	return &text{Text: fmt.Sprintf("%s: %s@%s", path, p.Name, p.Version)}
}

// fingerprint identifies a finding across runs, whatever else changes in
// the log: the vulnerability, the package and where it was found.
func fingerprint(f *match.Finding) string {
	h := sha256.New()
	for _, s := range append([]string{f.ID, f.Package.PURL, string(f.Package.Ecosystem), f.Package.Name, f.Package.Version}, f.Package.Locations...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func justification(s *match.Suppressed) string {
	switch {
	case s.IgnoreEntry != nil:
		j := "ignored by " + s.IgnoreEntry.Where
		if s.IgnoreEntry.Reason != "" {
			j += ": " + s.IgnoreEntry.Reason
		}
		return j
	case s.Statement != nil:
		j := "VEX " + s.Statement.Status
		if s.Statement.Justification != "" {
			j += " (" + s.Statement.Justification + ")"
		}
		if s.Statement.ImpactStatement != "" {
			j += ": " + s.Statement.ImpactStatement
		}
		return j + " [" + s.Statement.Document + "]"
	}
	return "suppressed by " + s.By
}

// level maps a rating to SARIF's levels as GitHub shows them.
func level(s match.Severity) string {
	switch s {
	case match.SeverityCritical, match.SeverityHigh:
		return "error"
	case match.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the score GitHub ranks alerts by (critical ≥ 9.0,
// high ≥ 7.0, medium ≥ 4.0, low > 0). When the rating came from a CVSS
// score it is that score; otherwise (a distro's or GHSA's own rating) a
// score inside the rating's band, so GitHub shows the rating berth chose.
func securitySeverity(f *match.Finding) string {
	if v, ok := strings.CutPrefix(f.SeveritySource, "cvss_v"); ok {
		best := -1.0
		for _, c := range f.CVSS {
			if c.Version == v && c.Score > best {
				best = c.Score
			}
		}
		if best >= 0 {
			return strconv.FormatFloat(best, 'f', 1, 64)
		}
	}
	switch f.Severity {
	case match.SeverityCritical:
		return "9.5"
	case match.SeverityHigh:
		return "8.0"
	case match.SeverityMedium:
		return "5.5"
	case match.SeverityLow:
		return "2.0"
	}
	return "0.0"
}

func sourceNote(f *match.Finding) string {
	if f.SeveritySource == "" {
		return ""
	}
	return " (from " + f.SeveritySource + ")"
}

// ruleName is a CamelCase name for the rule, as SARIF recommends: the id
// without punctuation.
func ruleName(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return "Vulnerability" + b.String()
}

// advisoryURL is the page that describes the vulnerability: the record's
// own advisory page where its id says which database published it, else
// osv.dev, which serves every id it knows.
func advisoryURL(f *match.Finding) string {
	id := f.ID
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return "https://nvd.nist.gov/vuln/detail/" + url.PathEscape(id)
	case strings.HasPrefix(id, "GHSA-"):
		return "https://github.com/advisories/" + url.PathEscape(id)
	case strings.HasPrefix(id, "GO-"):
		return "https://pkg.go.dev/vuln/" + url.PathEscape(id)
	case strings.HasPrefix(id, "DSA-"), strings.HasPrefix(id, "DLA-"):
		return "https://security-tracker.debian.org/tracker/" + url.PathEscape(id)
	}
	return "https://osv.dev/vulnerability/" + url.PathEscape(id)
}

func imageName(inv *inventory.Inventory) string {
	img := bom.Build(&inventory.Inventory{Source: inv.Source, Digest: inv.Digest}).Image
	return cmp.Or(img.Name, "image")
}

func shortDigest(d string) string {
	_, hex, found := strings.Cut(d, ":")
	if !found {
		hex = d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

// printable escapes control and bidi characters (as Go quotes them) and
// invalid UTF-8, so record and package text shows as what it is wherever
// the log is displayed.
func printable(s string) string {
	needs := func(r rune) bool { return unicode.IsControl(r) && r != '\n' || unicode.Is(unicode.Bidi_Control, r) }
	if !strings.ContainsFunc(s, needs) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if needs(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeMarkdown keeps package data from turning into Markdown (links,
// tables, HTML) in GitHub's rendering of the help text.
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range printable(s) {
		switch r {
		case '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '#', '+', '!', '|', '<', '>':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n', '\r':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// markdownLink writes a reference as an autolink when it is a plain URL,
// and as escaped text otherwise, so a record cannot inject Markdown.
func markdownLink(ref string) string {
	u, err := url.Parse(ref)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || strings.ContainsAny(ref, "<> \t\r\n") {
		return escapeMarkdown(ref)
	}
	return "<" + ref + ">"
}

func addProp(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}
