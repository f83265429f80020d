// Package cyclonedx writes an inventory as a CycloneDX 1.6 JSON SBOM.
//
// The image is metadata.component (type container); the distro, when
// known, is a component of type operating-system; every package is a
// library component whose bom-ref is its purl (made unique where two
// packages share one, see package bom). What CycloneDX has no field for
// (layer, locations, source package, analyzer) goes into properties in the
// "berth:" namespace:
//
//	berth:image:source, berth:image:configDigest, berth:image:os,
//	berth:image:architecture, berth:image:layerDiffID (one per layer, in order)
//	berth:package:analyzer, berth:package:arch, berth:package:dev,
//	berth:package:ecosystem, berth:package:layerDiffID,
//	berth:package:location (one per file), berth:package:sourceName,
//	berth:package:sourceVersion
package cyclonedx

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/internal/indentjson"
	"berth.dev/berth/internal/report/license"
)

// MediaType is the registered media type of CycloneDX JSON.
const MediaType = "application/vnd.cyclonedx+json"

const schemaURL = "http://cyclonedx.org/schema/bom-1.6.schema.json"

// Encode writes inv to w as an indented CycloneDX 1.6 JSON document.
func Encode(w io.Writer, inv *inventory.Inventory, meta bom.Meta) error {
	if err := indentjson.Encode(w, buildDocument(bom.Build(inv), meta)); err != nil {
		return fmt.Errorf("write CycloneDX: %w", err)
	}
	return nil
}

// buildDocument builds the CycloneDX BOM for b; the vulnerability report adds
// its findings to the same document.
func buildDocument(b *bom.BOM, meta bom.Meta) *document {
	meta = meta.Resolved()
	doc := &document{
		Schema:       schemaURL,
		BOMFormat:    bomFormat,
		SpecVersion:  specVersion,
		SerialNumber: "urn:uuid:" + meta.DocumentID.String(),
		Version:      1,
		Metadata: &metadata{
			Timestamp: meta.Created.Format(time.RFC3339),
			Tools: &tools{Components: []tool{{
				Type:    typeApplication,
				Name:    "berth",
				Version: htmlString(meta.ToolVersion),
			}}},
			Component: imageComponent(b),
		},
	}

	components := make([]component, 0, len(b.Packages)+1)
	if d := b.Inventory.Distro; d != nil {
		components = append(components, component{
			BOMRef:      b.OSRef,
			Type:        typeOS,
			Name:        d.ID,
			Version:     d.VersionID,
			Description: d.PrettyName,
		})
	}
	for i := range b.Packages {
		components = append(components, packageComponent(&b.Packages[i]))
	}
	doc.Components = components

	var deps []dependency
	for i := range b.Packages {
		p := &b.Packages[i]
		if len(p.Deps) == 0 {
			continue
		}
		refs := make([]string, len(p.Deps))
		for k, j := range p.Deps {
			refs[k] = b.Packages[j].Ref
		}
		deps = append(deps, dependency{Ref: p.Ref, DependsOn: refs})
	}
	doc.Dependencies = deps
	return doc
}

func imageComponent(b *bom.BOM) *component {
	inv := b.Inventory
	c := &component{
		BOMRef:     b.ImageRef,
		Type:       typeContainer,
		Name:       b.Image.Name,
		Version:    b.Image.Version,
		PackageURL: b.Image.PURL,
	}
	if hex, ok := b.Image.SHA256(); ok {
		c.Hashes = []hash{{Algorithm: hashSHA256, Value: hex}}
	}
	var props properties
	props.add("berth:image:source", inv.Source)
	props.add("berth:image:configDigest", inv.ConfigDigest)
	props.add("berth:image:os", inv.OS)
	props.add("berth:image:architecture", inv.Architecture)
	for _, l := range inv.Layers {
		props.add("berth:image:layerDiffID", l.DiffID)
	}
	c.Properties = props
	return c
}

func packageComponent(p *bom.Package) component {
	group, name := splitName(p.Ecosystem, p.Name)
	c := component{
		BOMRef:     p.Ref,
		Type:       typeLibrary,
		Group:      group,
		Name:       name,
		Version:    schemaVersion(p.Version),
		PackageURL: p.PURL,
		Licenses:   licenses(p.Licenses),
	}
	if p.Dev {
		// CycloneDX's "excluded" scope is the one for components that are
		// not part of the runtime, which is what a dev dependency is.
		c.Scope = scopeExcluded
	}
	props := make(properties, 0, 8+len(p.Locations)) // at most, and in one allocation
	props.add("berth:package:analyzer", p.Analyzer)
	props.add("berth:package:arch", p.Arch)
	if p.Dev {
		props.add("berth:package:dev", "true")
	}
	props.add("berth:package:ecosystem", string(p.Ecosystem))
	props.add("berth:package:layerDiffID", p.Layer)
	if p.Local {
		props.add("berth:package:local", "true")
	}
	for _, l := range p.Locations {
		props.add("berth:package:location", l)
	}
	props.add("berth:package:sourceName", p.SourceName)
	props.add("berth:package:sourceVersion", p.SourceVersion)
	c.Properties = props
	return c
}

// splitName moves the part of a name that CycloneDX calls the group into
// Group: a Maven groupId ("org.apache.commons:commons-lang3") and an npm
// scope ("@types/node"). The purl keeps the full identity either way.
func splitName(eco inventory.Ecosystem, name string) (group, rest string) {
	switch eco {
	case inventory.Maven:
		if g, a, ok := strings.Cut(name, ":"); ok && g != "" && a != "" {
			return g, a
		}
	case inventory.NPM:
		if strings.HasPrefix(name, "@") {
			if g, n, ok := strings.Cut(name, "/"); ok && n != "" {
				return g, n
			}
		}
	}
	return "", name
}

// licenses maps license strings to CycloneDX licenses: a known SPDX id
// becomes license.id, a lone valid SPDX expression becomes expression,
// anything else license.name. All are acknowledged as "declared": they
// come from package metadata, berth concludes nothing. CycloneDX allows either a list of license
// objects or exactly one expression, so an expression among several
// strings is kept as a name rather than dropped.
func licenses(raw []string) []licenseChoice {
	if len(raw) == 0 {
		return nil
	}
	kept := make([]string, 0, len(raw)) // a handful: a slice is cheaper than a map
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(kept, s) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 1 {
		if _, isID := license.ID(kept[0]); !isID {
			if expr, ok := license.Expression(kept[0]); ok {
				return []licenseChoice{{Expression: expr, Acknowledgement: declared}}
			}
		}
	}
	if len(kept) == 0 {
		return nil
	}
	out := make([]licenseChoice, 0, len(kept))
	infos := make([]licenseInfo, 0, len(kept)) // never grows: out points into it
	for _, s := range kept {
		id, ok := license.ID(s)
		switch {
		case !ok || !schemaKnowsID(id):
			infos = append(infos, licenseInfo{Name: htmlString(s), Acknowledgement: declared})
		case !slices.ContainsFunc(infos, func(l licenseInfo) bool { return l.ID == id }): // "MIT" and "mit" are one license
			infos = append(infos, licenseInfo{ID: id, Acknowledgement: declared})
		default:
			continue
		}
		out = append(out, licenseChoice{License: &infos[len(infos)-1]})
	}
	return out
}

type properties []property

// add records a property unless its value is empty: CycloneDX properties
// with empty values say nothing.
func (p *properties) add(name, value string) {
	if value != "" {
		*p = append(*p, property{Name: name, Value: value})
	}
}

// maxVersionLen is the longest version CycloneDX 1.6 allows (its
// "version" definition, for components and affected versions alike), in
// characters.
const maxVersionLen = 1024

// schemaVersion is v, or "" when v is longer than the schema allows: no
// ecosystem writes such a version, and one over-long string must not make
// the whole document invalid. A scanned image's versions, and those of
// an SBOM file read back, are bounded by the inventory already (in bytes,
// so never past this), but a report stored before that bound, or a fixed
// version from the vulnerability database, did not pass it. The purl
// still carries the version, and berth reads it back from there (and
// then leaves the package out, as the bound does).
func schemaVersion(v string) string {
	if len(v) > maxVersionLen && utf8.RuneCountInString(v) > maxVersionLen {
		return ""
	}
	return v
}
