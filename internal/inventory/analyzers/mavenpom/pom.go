// Package mavenpom reads the dependencies a project's pom.xml declares, as
// Trivy and osv-scalibr do for source trees: the versions written in the
// file, with ${property} references resolved and versions left out taken
// from <dependencyManagement>, over the POM's effective model along its
// parent chain on disk.
//
// A module's <parent> is the POM at its relativePath (a directory means
// its pom.xml; no element means ../pom.xml; an empty <relativePath/> means
// the parent is not on disk), taken only if its groupId and artifactId,
// and its version when both say one, are those <parent> declares: Maven's
// own rule, which also keeps a wrong ../pom.xml out. A relativePath that
// is absolute or leaves the scanned tree names nothing. From its parents a
// POM inherits properties, dependencyManagement and dependencies (its own
// declaration of a groupId:artifactId wins each time), its groupId and
// version; ${…} is resolved after inheritance, with the POM's own values,
// as Maven interpolates. A chain that comes back to a POM it holds is
// Maven's "parents form a cycle": the POM is read alone, with a warning.
// Packages inherited are reported at the child's file; the parent, a
// pom.xml too, reports its own, and the scan's merge makes one package of
// the two with both locations.
//
// Analyzers see one layer's files, and this one only files named
// pom.xml: a parent in another layer (or named otherwise) is not found,
// and a parent a later layer changes leaves its child as its own layer
// read it. Parents and imported BOMs that only a repository holds are not
// resolved, nor are version ranges other than the exact [1.2.3], so such
// dependencies are not reported: a declared version is what the files
// say, not what Maven resolved, and the jars of a built image
// (java-archive) are the truth.
package mavenpom

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads pom.xml files.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "maven-pom" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 4 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPOM(p)
}

// Analyze implements inventory.Analyzer: each pom.xml is one set, holding
// what its effective model declares.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	l := &lineage{files: files, parsed: map[string]*pom{}}
	parse := func(data []byte, location, analyzer string) ([]inventory.Package, error) {
		p := strings.TrimPrefix(location, "/")
		own, err := l.parse(p, data)
		if err != nil {
			return nil, err
		}
		return packages(l.chain(p, own), location, analyzer), nil
	}
	res, err := inventory.AnalyzeFiles(ctx, files, a.Name(), isPOM, parse)
	if err != nil {
		return nil, err
	}
	res.Warns = append(res.Warns, l.warns...)
	return res, nil
}

// isPOM matches a project's pom.xml; the copies Maven puts inside built
// jars (META-INF/maven/…), unpacked, are not projects.
func isPOM(p string) bool {
	return path.Base(p) == "pom.xml" && !strings.Contains("/"+p, "/META-INF/maven/")
}

type coords struct {
	GroupID    string `xml:"groupId"`
	ArtifactID string `xml:"artifactId"`
	Version    string `xml:"version"`
}

type dependency struct {
	coords
	Scope string `xml:"scope"`
}

// parentRef is a POM's <parent>. RelativePath is nil when the element is
// absent (Maven then looks at ../pom.xml) and empty for <relativePath/>
// (the parent is not on disk).
type parentRef struct {
	coords
	RelativePath *string `xml:"relativePath"`
}

type project struct {
	XMLName xml.Name `xml:"project"`
	coords
	Parent       parentRef    `xml:"parent"`
	Properties   properties   `xml:"properties"`
	Dependencies []dependency `xml:"dependencies>dependency"`
	Managed      []dependency `xml:"dependencyManagement>dependencies>dependency"`
	// Profiles active by default add their dependencies (and
	// properties) to every build that activates no other profile.
	Profiles []struct {
		ActiveByDefault string       `xml:"activation>activeByDefault"`
		Properties      properties   `xml:"properties"`
		Dependencies    []dependency `xml:"dependencies>dependency"`
	} `xml:"profiles>profile"`
}

type properties struct {
	Entries []struct {
		XMLName xml.Name
		Value   string `xml:",chardata"`
	} `xml:",any"`
}

// pom is one file's model with its profiles active by default applied:
// Maven activates each POM's profiles in that POM before inheritance.
type pom struct {
	project
	props map[string]string
	deps  []dependency
}

// Bounds: ${…} substitution rounds (properties may refer to properties,
// and a cycle must end), and parents followed (Maven sets none beyond
// cycles; a real chain is a few levels).
const (
	maxExpansions = 8
	maxParents    = 16
)

func parsePOM(data []byte) (*pom, error) {
	var p pom
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = charsetReader
	if err := dec.Decode(&p.project); err != nil {
		return nil, fmt.Errorf("parse pom.xml: %w", err)
	}
	p.props = map[string]string{}
	for _, e := range p.Properties.Entries {
		p.props[e.XMLName.Local] = strings.TrimSpace(e.Value)
	}
	p.deps = p.Dependencies
	for _, prof := range p.Profiles {
		if strings.TrimSpace(prof.ActiveByDefault) != "true" {
			continue
		}
		for _, e := range prof.Properties.Entries {
			p.props[e.XMLName.Local] = strings.TrimSpace(e.Value)
		}
		p.deps = append(p.deps, prof.Dependencies...)
	}
	return &p, nil
}

// lineage finds the parents of one Analyze call's POMs. Each file is
// parsed once, whether it is reached as a parent or walked, so a layer
// of n POMs costs n parses and at most maxParents merges for each.
type lineage struct {
	files  fs.FS
	parsed map[string]*pom // by path; nil: unreadable or not a POM
	warns  []string
}

// parse returns the model of the file at p, whose content is data.
func (l *lineage) parse(p string, data []byte) (*pom, error) {
	if m, ok := l.parsed[p]; ok && m != nil {
		return m, nil
	}
	m, err := parsePOM(data)
	l.parsed[p] = m
	return m, err
}

// load returns the model of the file at p, or nil. A parent that does
// not parse is no parent; the file warns when it is walked itself.
func (l *lineage) load(p string) *pom {
	if m, ok := l.parsed[p]; ok {
		return m
	}
	var m *pom
	if data, err := fs.ReadFile(l.files, p); err == nil {
		m, _ = parsePOM(data)
	}
	l.parsed[p] = m
	return m
}

// chain returns the POM at p (own) and its parents found on disk, child
// first.
func (l *lineage) chain(p string, own *pom) []*pom {
	chain := []*pom{own}
	seen := map[string]bool{p: true}
	for cur, at := own, p; ; {
		next := l.parentPath(at, cur.Parent)
		if next == "" {
			return chain
		}
		par := l.load(next)
		if par == nil || !par.is(cur.Parent.coords) {
			return chain
		}
		if seen[next] {
			l.warns = append(l.warns, fmt.Sprintf("/%s: its parent POMs form a cycle at /%s; read without them", p, next))
			return chain[:1]
		}
		if len(chain) > maxParents {
			l.warns = append(l.warns, fmt.Sprintf("/%s: more than %d parent POMs; those beyond are not read", p, maxParents))
			return chain
		}
		seen[next] = true
		chain = append(chain, par)
		cur, at = par, next
	}
}

// parentPath returns where the parent ref of the POM at child lies in the
// file system, or "" when not there: no parent, <relativePath/>, a path
// that is absolute or leaves the file system, or no pom.xml.
func (l *lineage) parentPath(child string, ref parentRef) string {
	if strings.TrimSpace(ref.GroupID) == "" || strings.TrimSpace(ref.ArtifactID) == "" {
		return ""
	}
	rel := "../pom.xml"
	if ref.RelativePath != nil {
		rel = strings.TrimSpace(*ref.RelativePath)
	}
	if rel == "" || strings.HasPrefix(rel, "/") {
		return ""
	}
	p := path.Join(path.Dir(child), rel)
	if !fs.ValidPath(p) || p == "." {
		return "" // "..", or beyond: out of the file system
	}
	if _, ok := l.parsed[p]; !ok {
		info, err := fs.Stat(l.files, p)
		if err != nil {
			return ""
		}
		if info.IsDir() {
			p = path.Join(p, "pom.xml")
		}
	}
	// Only files named pom.xml reach the analyzer in a scan; the same
	// rule here keeps a test's file system from meaning more.
	if !isPOM(p) {
		return ""
	}
	return p
}

// is reports whether the POM is the parent ref declares: same groupId
// and artifactId, same version when both say one. Its own groupId and
// version may be inherited from its own <parent>.
func (m *pom) is(ref coords) bool {
	v, want := first(m.Version, m.Parent.Version), strings.TrimSpace(ref.Version)
	return first(m.GroupID, m.Parent.GroupID) == strings.TrimSpace(ref.GroupID) &&
		strings.TrimSpace(m.ArtifactID) == strings.TrimSpace(ref.ArtifactID) &&
		(v == "" || want == "" || v == want)
}

// Parse reads one pom.xml's declared dependencies, without its parents.
// Test-scoped ones are dev; so are those of the profiles active by
// default. A POM without its own artifactId (a fragment Maven would not
// build) still declares them, as Trivy reads it.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	m, err := parsePOM(data)
	if err != nil {
		return nil, err
	}
	return packages([]*pom{m}, location, analyzer), nil
}

// packages returns what the effective model of chain (a POM, then its
// parents) declares, at location.
func packages(chain []*pom, location, analyzer string) []inventory.Package {
	p := chain[0]
	// Properties: the child's win, so apply the farthest ancestor first.
	props := map[string]string{}
	for i := len(chain) - 1; i >= 0; i-- {
		for k, v := range chain[i].props {
			props[k] = v
		}
	}
	// groupId and version, when left out, are the parent's (its ref says
	// them; a ref without a version takes the one found on disk).
	group, version := first(p.GroupID, p.Parent.GroupID), first(p.Version, p.Parent.Version)
	for _, anc := range chain[1:] {
		group, version = first(group, anc.GroupID), first(version, anc.Version)
	}
	for _, k := range []string{"project.", "pom.", ""} {
		props[k+"groupId"], props[k+"artifactId"], props[k+"version"] = group, p.ArtifactID, version
	}
	props["project.parent.version"] = strings.TrimSpace(p.Parent.Version)
	props["project.parent.groupId"] = strings.TrimSpace(p.Parent.GroupID)
	props["project.parent.artifactId"] = strings.TrimSpace(p.Parent.ArtifactID)
	resolve := func(s string) string {
		s = strings.TrimSpace(s)
		for range maxExpansions {
			i := strings.Index(s, "${")
			if i < 0 {
				return s
			}
			j := strings.Index(s[i:], "}")
			if j < 0 {
				return s
			}
			v, ok := props[s[i+2:i+j]]
			if !ok {
				return s
			}
			s = s[:i] + v + s[i+j+1:]
		}
		return s
	}
	// Managed versions and dependencies: the nearest declaration of a
	// groupId:artifactId wins, so walk child first. Dependencies are
	// keyed as written, as Maven merges them before interpolation.
	managed := map[string]string{}
	var deps []dependency
	inherited := map[string]bool{}
	for _, m := range chain {
		for _, d := range m.Managed {
			if k := resolve(d.GroupID) + ":" + resolve(d.ArtifactID); managed[k] == "" {
				managed[k] = resolve(d.Version)
			}
		}
		own := map[string]bool{}
		for _, d := range m.deps {
			k := strings.TrimSpace(d.GroupID) + ":" + strings.TrimSpace(d.ArtifactID)
			if inherited[k] {
				continue
			}
			own[k] = true
			deps = append(deps, d)
		}
		for k := range own {
			inherited[k] = true
		}
	}
	var pkgs []inventory.Package
	seen := map[string]bool{}
	for _, d := range deps {
		name := resolve(d.GroupID) + ":" + resolve(d.ArtifactID)
		v := resolve(d.Version)
		if v == "" {
			v = managed[name]
		}
		v = exact(v)
		if !declared(name) || !declared(v) || strings.ContainsAny(v, "[](),") || seen[name+"@"+v] {
			continue
		}
		seen[name+"@"+v] = true
		pkgs = append(pkgs, inventory.Package{
			Ecosystem: inventory.Maven, Name: name, Version: v,
			Locations: []string{location}, Analyzer: analyzer,
			Dev: strings.TrimSpace(d.Scope) == "test",
		})
	}
	return pkgs
}

// exact returns the version of Maven's exact range "[1.2.3]", a hard
// requirement of that version; any other version as it is. Other ranges
// name no one version without the repository, and are not reported.
func exact(v string) string {
	if len(v) > 2 && v[0] == '[' && v[len(v)-1] == ']' {
		if in := strings.TrimSpace(v[1 : len(v)-1]); in != "" && !strings.ContainsAny(in, "[](),") {
			return in
		}
	}
	return v
}

// declared reports whether s is a value written out, not empty and with
// no reference left unresolved.
func declared(s string) bool {
	return s != "" && !strings.Contains(s, "${") && !strings.HasPrefix(s, ":") && !strings.HasSuffix(s, ":")
}

func first(a, b string) string {
	if a = strings.TrimSpace(a); a != "" {
		return a
	}
	return strings.TrimSpace(b)
}

// charsetReader reads the encodings POMs declare besides UTF-8: ASCII and
// ISO-8859-1 (Latin-1, whose bytes are the first 256 code points).
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		var out strings.Builder
		for _, c := range b {
			out.WriteRune(rune(c))
		}
		return strings.NewReader(out.String()), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}
