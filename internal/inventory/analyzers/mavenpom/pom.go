// Package mavenpom reads the dependencies a project's pom.xml declares, as
// Trivy does for source trees: the versions written in the file, with
// ${property} references resolved from the same file's <properties> and
// project coordinates, and versions left out taken from its own
// <dependencyManagement>. Parent POMs, imported BOMs and version ranges
// are not resolved (that needs the repository), so such dependencies are
// not reported: a declared version is what the file says, not what Maven
// resolved, and the jars of a built image (java-archive) are the truth.
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
func (Analyzer) Version() int { return 3 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isPOM(p)
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isPOM, Parse)
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

type project struct {
	XMLName xml.Name `xml:"project"`
	coords
	Parent       coords       `xml:"parent"`
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

// maxExpansions bounds ${…} substitution rounds: properties may refer to
// properties, and a cycle must end.
const maxExpansions = 8

// Parse reads a pom.xml's declared dependencies. Test-scoped ones are
// dev; so are those of the profiles active by default. A POM without its own artifactId (a fragment Maven would not
// build) still declares them, as Trivy reads it.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var p project
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = charsetReader
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parse pom.xml: %w", err)
	}
	props := map[string]string{}
	for _, e := range p.Properties.Entries {
		props[e.XMLName.Local] = strings.TrimSpace(e.Value)
	}
	deps := p.Dependencies
	for _, prof := range p.Profiles {
		if strings.TrimSpace(prof.ActiveByDefault) != "true" {
			continue
		}
		for _, e := range prof.Properties.Entries {
			props[e.XMLName.Local] = strings.TrimSpace(e.Value)
		}
		deps = append(deps, prof.Dependencies...)
	}
	group, version := first(p.GroupID, p.Parent.GroupID), first(p.Version, p.Parent.Version)
	for _, k := range []string{"project.", "pom.", ""} {
		props[k+"groupId"], props[k+"artifactId"], props[k+"version"] = group, p.ArtifactID, version
	}
	props["project.parent.version"], props["project.parent.groupId"] = p.Parent.Version, p.Parent.GroupID
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
	managed := map[string]string{}
	for _, d := range p.Managed {
		managed[resolve(d.GroupID)+":"+resolve(d.ArtifactID)] = resolve(d.Version)
	}
	var pkgs []inventory.Package
	seen := map[string]bool{}
	for _, d := range deps {
		name := resolve(d.GroupID) + ":" + resolve(d.ArtifactID)
		v := resolve(d.Version)
		if v == "" {
			v = managed[name]
		}
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
	return pkgs, nil
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
