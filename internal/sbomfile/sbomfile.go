// Package sbomfile reads an SBOM document, CycloneDX JSON or SPDX 2.x
// JSON, into an inventory, so that `berth scan sbom:FILE` matches the
// packages another tool listed (as `trivy sbom` does), or berth itself.
//
// Packages are known by their package URL: its type is the ecosystem, its
// namespace and name the package's name, its "distro" qualifier the OS
// release, its "upstream" qualifier the source package an OS package was
// built from (matching goes by source package). The OS release also comes
// from an operating-system component (CycloneDX) or package (SPDX).
// berth's own documents carry more in their properties (the ecosystem,
// the source package, the files that declared the package, its layer,
// the analyzer), which are read back, so a scan of berth's SBOM of an
// image finds what a scan of the image finds. Components without a
// package URL, or with one of a type berth does not match (pkg:generic,
// pkg:oci), are skipped and counted in a warning.
package sbomfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"

	"berth.dev/berth/internal/inventory"
)

// MaxSize bounds the document read: an SBOM of the largest images is tens
// of megabytes.
const MaxSize = 512 << 20

// ErrNotSBOM is returned for a document that is neither CycloneDX nor
// SPDX JSON.
var ErrNotSBOM = errors.New("not a CycloneDX or SPDX JSON document")

// Read decodes a CycloneDX or SPDX JSON document into an inventory; name
// (the file's path) becomes its source when the document names no image.
func Read(r io.Reader, name string) (*inventory.Inventory, error) {
	return read(r, name, MaxSize)
}

// read is Read with the size bound as a parameter (small in tests).
func read(r io.Reader, name string, limit int64) (*inventory.Inventory, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	var kind struct {
		BOMFormat   string `json:"bomFormat"`
		SPDXVersion string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(data, &kind); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrNotSBOM, err)
	}
	var b builder
	switch {
	case kind.BOMFormat == "CycloneDX":
		err = b.cyclonedx(data)
	case strings.HasPrefix(kind.SPDXVersion, "SPDX-2."):
		err = b.spdx(data)
	default:
		return nil, fmt.Errorf("%s: %w (no bomFormat CycloneDX, no spdxVersion SPDX-2.x)", name, ErrNotSBOM)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b.inventory(name), nil
}

// builder gathers what a document says, in either format.
type builder struct {
	image, digest string
	distro        *inventory.Distro
	layers        []inventory.Layer
	pkgs          []inventory.Package
	skipped       map[string]int // by purl type, "" for none
}

func (b *builder) skip(kind string) {
	if b.skipped == nil {
		b.skipped = map[string]int{}
	}
	b.skipped[kind]++
}

func (b *builder) addLayer(diffID string) {
	if diffID != "" && !slices.ContainsFunc(b.layers, func(l inventory.Layer) bool { return l.DiffID == diffID }) {
		b.layers = append(b.layers, inventory.Layer{DiffID: diffID})
	}
}

// inventory finishes the inventory: the distro of the purls when the
// document named none, packages with an overlong name or version left
// out, purls made as berth makes them, one package per purl.
func (b *builder) inventory(name string) *inventory.Inventory {
	inv := &inventory.Inventory{Source: name, Digest: b.digest, Distro: b.distro, Layers: b.layers}
	if b.image != "" {
		inv.Source = b.image
	}
	if inv.Layers == nil {
		inv.Layers = []inventory.Layer{}
	}
	// Another tool's document (or one edited by hand) lists what it
	// likes, and this inventory never passes the merge: the merge's
	// bound on names and versions is applied here, with its warning.
	pkgs, overlong := inventory.DropOverlong(b.pkgs)
	if overlong != "" {
		inv.Warnings = append(inv.Warnings, overlong)
	}
	seen := map[string]int{}
	inv.Packages = []inventory.Package{}
	for _, p := range pkgs {
		p.PURL = inventory.PURL(p, inv.Distro)
		if i, ok := seen[p.PURL]; ok {
			for _, l := range p.Locations {
				if !slices.Contains(inv.Packages[i].Locations, l) {
					inv.Packages[i].Locations = append(inv.Packages[i].Locations, l)
				}
			}
			continue
		}
		seen[p.PURL] = len(inv.Packages)
		inv.Packages = append(inv.Packages, p)
	}
	if len(b.skipped) > 0 {
		var parts []string
		for _, kind := range slices.Sorted(maps.Keys(b.skipped)) {
			label := "without a package URL"
			if kind != "" {
				label = "of type pkg:" + kind
			}
			parts = append(parts, fmt.Sprintf("%d %s", b.skipped[kind], label))
		}
		inv.Warnings = append(inv.Warnings, "components not matched, having no package URL berth matches: "+strings.Join(parts, ", "))
	}
	return inv
}

// fromPURL makes a package of a package URL; ok is false for a type berth
// does not match. The distro its qualifier names is returned too.
func fromPURL(s string) (p inventory.Package, d *inventory.Distro, kind string, ok bool) {
	u, err := packageurl.FromString(s)
	if err != nil {
		return p, nil, "", false
	}
	eco := inventory.Ecosystem(u.Type)
	if !slices.Contains(ecosystems, eco) {
		return p, nil, u.Type, false
	}
	p = inventory.Package{Ecosystem: eco, Name: u.Name, Version: u.Version}
	q := u.Qualifiers.Map()
	switch eco {
	case inventory.Deb, inventory.APK, inventory.RPM:
		p.Arch = q["arch"]
		if epoch := q["epoch"]; epoch != "" && eco == inventory.RPM {
			p.Version = epoch + ":" + p.Version
		}
		if id, ver, ok := strings.Cut(q["distro"], "-"); ok && id != "" && ver != "" {
			d = &inventory.Distro{ID: strings.ToLower(id), VersionID: ver}
		}
		p.SourceName, p.SourceVersion = p.Name, p.Version
		if up := q["upstream"]; up != "" {
			name, ver, hasVer := strings.Cut(up, "@")
			p.SourceName = name
			if hasVer {
				p.SourceVersion = ver
			}
		}
	case inventory.Go, inventory.Composer:
		if u.Namespace != "" {
			p.Name = u.Namespace + "/" + u.Name
		}
		// The Go standard library's purl writes 1.26.8; berth's
		// inventory writes the toolchain's go1.26.8.
		if eco == inventory.Go && p.Name == "stdlib" && p.Version != "" && !strings.HasPrefix(p.Version, "go") {
			p.Version = "go" + p.Version
		}
	case inventory.NPM:
		if u.Namespace != "" {
			p.Name = u.Namespace + "/" + u.Name
		}
	case inventory.Maven:
		if u.Namespace != "" {
			p.Name = u.Namespace + ":" + u.Name
		}
	}
	return p, d, "", true
}

// ecosystems are the purl types berth matches (or lists): the ecosystems
// of its inventory, which are named by purl type.
var ecosystems = []inventory.Ecosystem{
	inventory.Deb, inventory.APK, inventory.RPM, inventory.Go, inventory.NPM, inventory.PyPI,
	inventory.Maven, inventory.Gem, inventory.Cargo, inventory.Composer, inventory.NuGet,
	inventory.Hex, inventory.Pub, inventory.Conda, inventory.Conan,
}

// props are a component's properties by name (several values each).
type props map[string][]string

func (ps props) first(name string) string {
	if v := ps[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// cdxComponent is what berth reads of a CycloneDX component.
type cdxComponent struct {
	Type        string         `json:"type"`
	Name        string         `json:"name"`
	Version     string         `json:"version"`
	Description string         `json:"description"`
	PURL        string         `json:"purl"`
	Properties  []cdxProperty  `json:"properties"`
	Components  []cdxComponent `json:"components"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (c *cdxComponent) props() props {
	ps := props{}
	for _, p := range c.Properties {
		ps[p.Name] = append(ps[p.Name], p.Value)
	}
	return ps
}

func (b *builder) cyclonedx(data []byte) error {
	var doc struct {
		Metadata struct {
			Component *cdxComponent `json:"component"`
		} `json:"metadata"`
		Components []cdxComponent `json:"components"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("CycloneDX: %w", err)
	}
	if c := doc.Metadata.Component; c != nil {
		ps := c.props()
		b.image = ps.first("berth:image:source")
		if b.image == "" && c.Type == "container" {
			b.image = c.Name
		}
		if strings.HasPrefix(c.Version, "sha256:") {
			b.digest = c.Version
		}
		for _, l := range ps["berth:image:layerDiffID"] {
			b.addLayer(l)
		}
	}
	var walk func([]cdxComponent)
	walk = func(cs []cdxComponent) {
		for i := range cs {
			b.cdxComponent(&cs[i])
			walk(cs[i].Components)
		}
	}
	walk(doc.Components)
	return nil
}

func (b *builder) cdxComponent(c *cdxComponent) {
	if c.Type == "operating-system" {
		if b.distro == nil && c.Name != "" {
			b.distro = &inventory.Distro{ID: strings.ToLower(c.Name), VersionID: c.Version, PrettyName: c.Description}
		}
		return
	}
	if c.PURL == "" {
		b.skip("")
		return
	}
	p, d, kind, ok := fromPURL(c.PURL)
	if !ok {
		b.skip(kind)
		return
	}
	if b.distro == nil && d != nil {
		b.distro = d
	}
	if c.Version != "" {
		p.Version = c.Version
		if p.SourceName != "" && p.SourceVersion == "" {
			p.SourceVersion = c.Version
		}
	}
	ps := c.props()
	// berth's own properties, and Trivy's names for the source package.
	if eco := ps.first("berth:package:ecosystem"); eco != "" && eco == string(p.Ecosystem) {
		p.Analyzer = ps.first("berth:package:analyzer")
		p.Layer = ps.first("berth:package:layerDiffID")
		p.Locations = ps["berth:package:location"]
		p.Dev = ps.first("berth:package:dev") == "true"
		p.Local = ps.first("berth:package:local") == "true"
		if v := ps.first("berth:package:arch"); v != "" {
			p.Arch = v
		}
		if v := ps.first("berth:package:sourceName"); v != "" {
			p.SourceName, p.SourceVersion = v, ps.first("berth:package:sourceVersion")
		}
	}
	if v := ps.first("aquasecurity:trivy:SrcName"); v != "" {
		p.SourceName = v
		if sv := ps.first("aquasecurity:trivy:SrcVersion"); sv != "" {
			p.SourceVersion = sv
			if r := ps.first("aquasecurity:trivy:SrcRelease"); r != "" {
				p.SourceVersion += "-" + r
			}
		}
	}
	b.addLayer(p.Layer)
	if p.Analyzer == "" {
		p.Analyzer = "sbom"
	}
	b.pkgs = append(b.pkgs, p)
}

func (b *builder) spdx(data []byte) error {
	var doc struct {
		Packages []struct {
			Name                  string `json:"name"`
			VersionInfo           string `json:"versionInfo"`
			Description           string `json:"description"`
			SourceInfo            string `json:"sourceInfo"`
			PrimaryPackagePurpose string `json:"primaryPackagePurpose"`
			ExternalRefs          []struct {
				ReferenceCategory string `json:"referenceCategory"`
				ReferenceType     string `json:"referenceType"`
				ReferenceLocator  string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("SPDX: %w", err)
	}
	for _, sp := range doc.Packages {
		switch sp.PrimaryPackagePurpose {
		case "OPERATING-SYSTEM", "OPERATING_SYSTEM":
			if b.distro == nil && sp.Name != "" {
				b.distro = &inventory.Distro{ID: strings.ToLower(sp.Name), VersionID: sp.VersionInfo, PrettyName: sp.Description}
			}
			continue
		case "CONTAINER":
			if b.image == "" {
				b.image = sp.Name
				if strings.HasPrefix(sp.VersionInfo, "sha256:") {
					b.digest = sp.VersionInfo
				}
			}
			continue
		}
		purl := ""
		for _, ref := range sp.ExternalRefs {
			if ref.ReferenceType == "purl" {
				purl = ref.ReferenceLocator
				break
			}
		}
		if purl == "" {
			b.skip("")
			continue
		}
		p, d, kind, ok := fromPURL(purl)
		if !ok {
			b.skip(kind)
			continue
		}
		if b.distro == nil && d != nil {
			b.distro = d
		}
		if sp.VersionInfo != "" {
			p.Version = sp.VersionInfo
			if p.SourceName != "" && p.SourceVersion == "" {
				p.SourceVersion = sp.VersionInfo
			}
		}
		// berth writes where it found the package and in which layer.
		for _, part := range strings.Split(sp.SourceInfo, "; ") {
			if files, ok := strings.CutPrefix(part, "acquired package info from "); ok {
				p.Locations = strings.Split(files, ", ")
			} else if layer, ok := strings.CutPrefix(part, "in layer "); ok {
				p.Layer = layer
				b.addLayer(layer)
			}
		}
		p.Analyzer = "sbom"
		b.pkgs = append(b.pkgs, p)
	}
	return nil
}
