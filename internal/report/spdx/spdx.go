// Package spdx writes an inventory as an SPDX 2.3 JSON document.
//
// The document DESCRIBES one package for the image (purpose CONTAINER),
// which CONTAINS a package for the distro (OPERATING_SYSTEM) and one
// package per inventory package; DEPENDS_ON relationships carry the
// dependencies the inventory knows. Every package has filesAnalyzed false
// (berth reads package metadata, not every file), downloadLocation
// NOASSERTION, licenseConcluded NOASSERTION (berth draws no conclusions),
// licenseDeclared from the package metadata, and its purl as a
// PACKAGE-MANAGER external reference.
//
// The types and the writer come from github.com/spdx/tools-golang, the
// SPDX project's own Go library, so field names and the JSON shape follow
// the reference implementation rather than our reading of the spec.
package spdx

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/license"
)

// MediaType is the registered media type of SPDX JSON.
const MediaType = "application/spdx+json"

// NamespaceBase prefixes every document namespace; the document ID (a
// UUID) makes each namespace unique, as SPDX requires.
const NamespaceBase = "https://berth.dev/spdxdocs/"

const (
	noAssertion = "NOASSERTION"
	imageID     = common.ElementID("Image")
	osID        = common.ElementID("OperatingSystem")
	// The SPDX 2.3 JSON schema spells the purposes with underscores.
	purposeContainer = "CONTAINER"
	purposeOS        = "OPERATING_SYSTEM"
)

// Encode writes inv to w as an indented SPDX 2.3 JSON document.
func Encode(w io.Writer, inv *inventory.Inventory, meta bom.Meta) error {
	doc := Document(bom.Build(inv), meta)
	if err := spdxjson.Write(doc, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return fmt.Errorf("write SPDX: %w", err)
	}
	return nil
}

// Document builds the SPDX document for b.
func Document(b *bom.BOM, meta bom.Meta) *v2_3.Document {
	meta = meta.Resolved()
	doc := &v2_3.Document{
		SPDXVersion:       v2_3.Version,
		DataLicense:       v2_3.DataLicense,
		SPDXIdentifier:    common.ElementID("DOCUMENT"),
		DocumentName:      b.Image.Name,
		DocumentNamespace: NamespaceBase + uriSegment(b.Image.Name) + "-" + meta.DocumentID.String(),
		CreationInfo: &v2_3.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "berth-" + meta.ToolVersion}},
			Created:  meta.Created.Format(time.RFC3339),
		},
	}
	refs := newLicenseRefs()

	doc.Packages = append(doc.Packages, imagePackage(b))
	doc.Relationships = append(doc.Relationships, relationship("DOCUMENT", imageID, common.TypeRelationshipDescribe))
	if d := b.Inventory.Distro; d != nil {
		doc.Packages = append(doc.Packages, &v2_3.Package{
			PackageName:             d.ID,
			PackageSPDXIdentifier:   osID,
			PackageVersion:          d.VersionID,
			PackageDownloadLocation: noAssertion,
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageDescription:      d.PrettyName,
			PrimaryPackagePurpose:   purposeOS,
		})
		doc.Relationships = append(doc.Relationships, relationship(imageID, osID, common.TypeRelationshipContains))
	}

	ids := packageIDs(b)
	for i := range b.Packages {
		p := &b.Packages[i]
		doc.Packages = append(doc.Packages, &v2_3.Package{
			PackageName:               p.Name,
			PackageSPDXIdentifier:     ids[i],
			PackageVersion:            p.Version,
			PackageDownloadLocation:   noAssertion,
			PackageLicenseConcluded:   noAssertion,
			PackageLicenseDeclared:    refs.declared(p.Licenses),
			PackageSourceInfo:         sourceInfo(p),
			PackageExternalReferences: purlRef(p.PURL),
		})
		doc.Relationships = append(doc.Relationships, relationship(imageID, ids[i], common.TypeRelationshipContains))
	}
	for i := range b.Packages {
		for _, j := range b.Packages[i].Deps {
			doc.Relationships = append(doc.Relationships, relationship(ids[i], ids[j], common.TypeRelationshipDependsOn))
		}
	}
	doc.OtherLicenses = refs.list()
	return doc
}

func imagePackage(b *bom.BOM) *v2_3.Package {
	p := &v2_3.Package{
		PackageName:               b.Image.Name,
		PackageSPDXIdentifier:     imageID,
		PackageVersion:            b.Image.Version,
		PackageDownloadLocation:   noAssertion,
		PackageLicenseConcluded:   noAssertion,
		PackageLicenseDeclared:    noAssertion,
		PackageExternalReferences: purlRef(b.Image.PURL),
		PrimaryPackagePurpose:     purposeContainer,
	}
	if hex, ok := b.Image.SHA256(); ok {
		p.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: hex}}
	}
	if src := b.Inventory.Source; src != "" {
		p.PackageSourceInfo = "image " + src
	}
	return p
}

func relationship(a, b common.ElementID, typ string) *v2_3.Relationship {
	return &v2_3.Relationship{
		RefA:         common.DocElementID{ElementRefID: a},
		RefB:         common.DocElementID{ElementRefID: b},
		Relationship: typ,
	}
}

func purlRef(purl string) []*v2_3.PackageExternalReference {
	if purl == "" {
		return nil
	}
	return []*v2_3.PackageExternalReference{{
		Category: common.CategoryPackageManager,
		RefType:  common.TypePackageManagerPURL,
		Locator:  purl,
	}}
}

// sourceInfo says where berth found the package, which SPDX 2.3 has no
// structured field for.
func sourceInfo(p *bom.Package) string {
	var parts []string
	if len(p.Locations) > 0 {
		parts = append(parts, "acquired package info from "+strings.Join(p.Locations, ", "))
	}
	if p.Layer != "" {
		parts = append(parts, "in layer "+p.Layer)
	}
	if p.SourceName != "" && (p.SourceName != p.Name || p.SourceVersion != p.Version) {
		parts = append(parts, strings.TrimSpace("built from source package "+p.SourceName+" "+p.SourceVersion))
	}
	if p.Dev {
		parts = append(parts, "development dependency")
	}
	if p.Local {
		parts = append(parts, "not from the registry (the project's own, or shipped with its SDK), so not matched")
	}
	return strings.Join(parts, "; ")
}

// packageIDs gives each package an SPDX id "SPDXRef-Package-<ecosystem>-
// <name>-<hash>": readable, limited to the characters SPDX allows, and
// unique because the hash is taken over the package's unique Ref.
func packageIDs(b *bom.BOM) []common.ElementID {
	ids := make([]common.ElementID, len(b.Packages))
	for i := range b.Packages {
		p := &b.Packages[i]
		sum := sha256.Sum256([]byte(p.Ref))
		parts := []string{"Package"}
		for _, s := range []string{string(p.Ecosystem), p.Name} {
			if s = idString(s); s != "" {
				parts = append(parts, s)
			}
		}
		parts = append(parts, hex.EncodeToString(sum[:8]))
		ids[i] = common.ElementID(strings.Join(parts, "-"))
	}
	return ids
}

// idString maps s onto the SPDX idstring alphabet (letters, digits, "."
// and "-"): each run of other characters becomes one "-", and dashes at
// the ends go.
func idString(s string) string {
	var b strings.Builder
	dash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' {
			b.WriteByte(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// uriSegment is idString for the namespace URI, which must not carry
// spaces, "#" or other characters a URI would need escaped.
func uriSegment(s string) string {
	if seg := idString(s); seg != "" {
		return seg
	}
	return "image"
}

// licenseRefs turns license strings into an SPDX licenseDeclared
// expression and collects the LicenseRef-s it had to invent for strings
// that are not SPDX, with the original text, so nothing is lost.
type licenseRefs struct {
	byText map[string]string // original text -> LicenseRef id
	byID   map[string]string // LicenseRef id -> original text
}

func newLicenseRefs() *licenseRefs {
	return &licenseRefs{byText: map[string]string{}, byID: map[string]string{}}
}

// declared joins the package's licenses with AND: metadata listing several
// licenses (a Debian copyright file, a PKG-INFO classifier list) means
// that all of them apply to some part of the package.
func (r *licenseRefs) declared(raw []string) string {
	var parts []string
	for _, s := range raw {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		expr, ok := license.Expression(s)
		if !ok {
			expr = r.ref(s)
		}
		if !slices.Contains(parts, expr) {
			parts = append(parts, expr)
		}
	}
	switch len(parts) {
	case 0:
		return noAssertion
	case 1:
		return parts[0]
	}
	for i, p := range parts {
		if strings.Contains(p, " ") {
			parts[i] = "(" + p + ")"
		}
	}
	return strings.Join(parts, " AND ")
}

// ref names a license text that is not SPDX. The id depends on the text
// alone, so the same text gets the same LicenseRef in every document berth
// writes: the text itself when it is already a valid idstring, else its
// sanitised form plus a short hash ("GPL-2+" and "GPL-2" must not meet).
func (r *licenseRefs) ref(text string) string {
	if id, ok := r.byText[text]; ok {
		return id
	}
	id := "LicenseRef-" + text
	if idString(text) != text {
		sum := sha256.Sum256([]byte(text))
		id = "LicenseRef-" + strings.TrimPrefix(idString(text)+"-", "-") + hex.EncodeToString(sum[:4])
		if other, taken := r.byID[id]; taken && other != text {
			id += hex.EncodeToString(sum[4:12])
		}
	}
	r.byText[text], r.byID[id] = id, text
	return id
}

func (r *licenseRefs) list() []*v2_3.OtherLicense {
	var out []*v2_3.OtherLicense
	for id, text := range r.byID {
		out = append(out, &v2_3.OtherLicense{LicenseIdentifier: id, ExtractedText: text, LicenseName: text})
	}
	slices.SortFunc(out, func(a, b *v2_3.OtherLicense) int { return strings.Compare(a.LicenseIdentifier, b.LicenseIdentifier) })
	return out
}
