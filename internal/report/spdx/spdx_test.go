package spdx

import (
	"bytes"
	"encoding/json"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/package-url/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/internal/fixture"
	"berth.dev/berth/internal/report/internal/schematest"
	"berth.dev/berth/internal/report/license"
)

var fixedMeta = bom.Meta{
	Created:     time.Date(2026, 11, 22, 14, 30, 0, 0, time.UTC),
	DocumentID:  uuid.MustParse("0b4a5c1e-3f7d-4e2a-9c61-5d8e7f6a1b20"),
	ToolVersion: "1.0.0-test",
}

func encode(t testing.TB, inv *inventory.Inventory) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, inv, fixedMeta); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

func TestKitchenSinkGolden(t *testing.T) {
	inv := fixture.KitchenSink(t)
	out := encode(t, inv)
	golden.Check(t, filepath.Join("testdata", "kitchen-sink.spdx.json"), out)
	doc := checkDocument(t, out, inv)

	if doc.DocumentNamespace != NamespaceBase+"kitchen-sink-"+fixedMeta.DocumentID.String() {
		t.Errorf("documentNamespace %q", doc.DocumentNamespace)
	}
	byName := map[string]*v2_3.Package{}
	for _, p := range doc.Packages {
		byName[p.PackageName] = p
	}
	img := byName["kitchen-sink"]
	if img == nil || img.PrimaryPackagePurpose != "CONTAINER" || img.PackageVersion != "latest" ||
		len(img.PackageChecksums) != 1 || img.PackageChecksums[0].Value != "3167c5a45f029a23a7ad667739244fbcaf04072911c6e32cd6d2b8a0da440383" {
		t.Errorf("image package = %+v", img)
	}
	for name, want := range map[string]string{
		"libc6":                            "LGPL-2.1-or-later AND LicenseRef-GPL-2",
		"perl-base":                        "GPL-1.0-or-later OR Artistic-1.0-Perl",
		"ca-certificates":                  "MPL-2.0 AND LicenseRef-GPL-2-",
		"requests":                         "LicenseRef-Apache-2.0-",
		"lodash":                           "MIT",
		"org.apache.commons:commons-lang3": "Apache-2.0",
		"golang.org/x/net":                 noAssertion,
	} {
		p := byName[name]
		if p == nil {
			t.Errorf("no package %s", name)
			continue
		}
		if !strings.HasPrefix(p.PackageLicenseDeclared, want) {
			t.Errorf("%s: licenseDeclared %q, want %q", name, p.PackageLicenseDeclared, want)
		}
	}
	if got := byName["libc6"].PackageLicenseDeclared; got != "LGPL-2.1-or-later AND LicenseRef-GPL-2" {
		t.Errorf("libc6: licenseDeclared %q", got)
	}
	// "GPL-2" and "GPL-2+" both sanitise to LicenseRef-GPL-2; they must
	// stay two licenses with their own text.
	texts := map[string]string{}
	for _, l := range doc.OtherLicenses {
		texts[l.LicenseIdentifier] = l.ExtractedText
	}
	if texts["LicenseRef-GPL-2"] == "" || len(texts) != 5 {
		t.Errorf("extracted licenses = %v", texts)
	}
	var gpl2 []string
	for id, text := range texts {
		if strings.HasPrefix(id, "LicenseRef-GPL-2") {
			gpl2 = append(gpl2, text)
		}
	}
	slices.Sort(gpl2)
	if !slices.Equal(gpl2, []string{"GPL-2", "GPL-2+"}) {
		t.Errorf("GPL-2 refs hold %q", gpl2)
	}

	counts := map[string]int{}
	for _, r := range doc.Relationships {
		counts[r.Relationship]++
	}
	if counts["DESCRIBES"] != 1 || counts["CONTAINS"] != len(inv.Packages)+1 || counts["DEPENDS_ON"] < 10 {
		t.Errorf("relationship counts %v", counts)
	}
}

func TestAwkwardInputs(t *testing.T) {
	for _, tc := range fixture.AwkwardInputs() {
		t.Run(tc.Name, func(t *testing.T) {
			out := encode(t, tc.Inv)
			golden.Check(t, filepath.Join("testdata", "awkward", strings.ReplaceAll(tc.Name, " ", "-")+".spdx.json"), out)
			checkDocument(t, out, tc.Inv)
		})
	}
}

func TestDocumentIsStable(t *testing.T) {
	inv := fixture.KitchenSink(t)
	first := encode(t, inv)
	slices.Reverse(inv.Packages)
	if second := encode(t, inv); !bytes.Equal(first, second) {
		t.Error("package order of the inventory changes the document")
	}
}

func TestNamespaceUniquePerDocument(t *testing.T) {
	inv := &inventory.Inventory{Source: "app:1"}
	namespaces := map[string]bool{}
	for range 3 {
		var buf bytes.Buffer
		if err := Encode(&buf, inv, bom.Meta{}); err != nil {
			t.Fatal(err)
		}
		schematest.SPDX(t, buf.Bytes())
		var doc struct{ DocumentNamespace string }
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		namespaces[doc.DocumentNamespace] = true
	}
	if len(namespaces) != 3 {
		t.Errorf("three documents share namespaces: %v", namespaces)
	}
}

func TestIDString(t *testing.T) {
	for in, want := range map[string]string{
		"libc6":                            "libc6",
		"org.apache.commons:commons-lang3": "org.apache.commons-commons-lang3",
		"@scope/na me+x":                   "scope-na-me-x",
		"golang.org/x/net":                 "golang.org-x-net",
		"©®":                               "",
		"a__b":                             "a-b",
		"":                                 "",
	} {
		if got := idString(in); got != want {
			t.Errorf("idString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeclared(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, noAssertion},
		{[]string{" ", ""}, noAssertion},
		{[]string{"mit"}, "MIT"},
		{[]string{"MIT", "mit"}, "MIT"},
		{[]string{"MIT OR Apache-2.0"}, "MIT OR Apache-2.0"},
		{[]string{"MIT OR Apache-2.0", "BSD-3-Clause"}, "(MIT OR Apache-2.0) AND BSD-3-Clause"},
		{[]string{"Apache 2.0"}, "LicenseRef-Apache-2.0-"},
		{[]string{"GPL-2"}, "LicenseRef-GPL-2"},
		{[]string{"©"}, "LicenseRef-"},
		{[]string{"GPL-2", "GPL 2"}, "LicenseRef-GPL-2 AND LicenseRef-GPL-2-"},
	}
	for _, tt := range tests {
		got := newLicenseRefs().declared(tt.in)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("declared(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if _, ok := license.Expression(got); !ok && got != noAssertion {
			t.Errorf("declared(%q) = %q is not an SPDX expression", tt.in, got)
		}
	}
}

func TestValidatorRejects(t *testing.T) {
	good := encode(t, &inventory.Inventory{Source: "x", Packages: []inventory.Package{{Ecosystem: inventory.NPM, Name: "a", Version: "1"}}})
	for name, bad := range map[string][]byte{
		"unknown purpose":      bytes.Replace(good, []byte(`"CONTAINER"`), []byte(`"BOX"`), 1),
		"unknown relation":     bytes.Replace(good, []byte(`"DESCRIBES"`), []byte(`"LIKES"`), 1),
		"no download location": bytes.Replace(good, []byte(`"downloadLocation": "NOASSERTION",`), nil, 1),
	} {
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if err := schematest.SPDXError(bad); err == nil {
			t.Errorf("%s: schema accepted the document", name)
		}
	}
}

var spdxIDPattern = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.\-]+$`)

// checkDocument validates out against the SPDX 2.3 schema, reads it back
// with tools-golang, and checks what the schema cannot: SPDXID charset and
// uniqueness, relationships between existing elements, parseable purls,
// valid license expressions whose LicenseRefs are all defined, and a
// namespace that is an absolute URI without a fragment.
func checkDocument(t *testing.T, out []byte, inv *inventory.Inventory) *v2_3.Document {
	t.Helper()
	schematest.SPDX(t, out)
	var raw struct {
		Packages []struct {
			SPDXID string `json:"SPDXID"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{"SPDXRef-DOCUMENT": true}
	for _, p := range raw.Packages {
		if !spdxIDPattern.MatchString(p.SPDXID) {
			t.Errorf("SPDXID %q has characters SPDX does not allow", p.SPDXID)
		}
		if ids[p.SPDXID] {
			t.Errorf("SPDXID %q twice", p.SPDXID)
		}
		ids[p.SPDXID] = true
	}

	var doc v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(out), &doc); err != nil {
		t.Fatalf("tools-golang cannot read the document: %v", err)
	}
	wantPkgs := len(inv.Packages) + 1
	if inv.Distro != nil {
		wantPkgs++
	}
	if len(doc.Packages) != wantPkgs {
		t.Errorf("%d packages, want %d", len(doc.Packages), wantPkgs)
	}
	u, err := url.Parse(doc.DocumentNamespace)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(doc.DocumentNamespace, "#") {
		t.Errorf("documentNamespace %q is not an absolute URI without fragment", doc.DocumentNamespace)
	}
	refs := map[string]bool{}
	for _, l := range doc.OtherLicenses {
		if !license.IsLicenseRef(l.LicenseIdentifier) || l.ExtractedText == "" {
			t.Errorf("extracted license %+v", l)
		}
		refs[l.LicenseIdentifier] = true
	}
	for _, p := range doc.Packages {
		if p.PackageDownloadLocation == "" {
			t.Errorf("%s: no downloadLocation", p.PackageSPDXIdentifier)
		}
		for _, e := range p.PackageExternalReferences {
			if _, err := packageurl.FromString(e.Locator); err != nil || e.Category != "PACKAGE-MANAGER" || e.RefType != "purl" {
				t.Errorf("%s: external ref %+v: %v", p.PackageSPDXIdentifier, e, err)
			}
		}
		for _, l := range []string{p.PackageLicenseDeclared, p.PackageLicenseConcluded} {
			if l == noAssertion {
				continue
			}
			if _, ok := license.Expression(l); !ok {
				t.Errorf("%s: license %q is not an SPDX expression", p.PackageSPDXIdentifier, l)
			}
			for _, tok := range strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '(' || r == ')' }) {
				if strings.HasPrefix(tok, "LicenseRef-") && !refs[tok] {
					t.Errorf("%s: %s is used but not in hasExtractedLicensingInfos", p.PackageSPDXIdentifier, tok)
				}
			}
		}
	}
	describes := 0
	for _, r := range doc.Relationships {
		for _, e := range []common.DocElementID{r.RefA, r.RefB} {
			if !ids[common.RenderDocElementID(e)] {
				t.Errorf("relationship %s names %s, which is not in the document", r.Relationship, common.RenderDocElementID(e))
			}
		}
		if r.Relationship == common.TypeRelationshipDescribe {
			describes++
		}
	}
	if describes != 1 {
		t.Errorf("%d DESCRIBES relationships, want 1", describes)
	}
	return &doc
}

func BenchmarkEncode2000(b *testing.B) {
	inv := fixture.Synthetic(2000)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Encode(&buf, inv, fixedMeta); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// FuzzEncode feeds arbitrary package data through the encoder: the
// document must stay valid SPDX, with well-formed unique SPDXIDs and
// license expressions that parse.
func FuzzEncode(f *testing.F) {
	f.Add("oci-archive:/x/app.tar:1", "npm", "@scope/na me", "1.0.0 beta", "MIT OR Apache-2.0", "pkg:npm/x@1", "lib")
	f.Add("", "", "", "", "GPL-2+", "", "")
	f.Add("a#b c", "maven", "g:a", "(devel)", "LicenseRef-x", "pkg:npm/x@1", "g:a")
	f.Fuzz(func(t *testing.T, source, eco, name, version, lic, purl, dep string) {
		p := inventory.Package{Ecosystem: inventory.Ecosystem(eco), Name: name, Version: version, PURL: purl,
			Licenses: []string{lic}, DependsOn: []string{dep}}
		inv := &inventory.Inventory{Source: source, Packages: []inventory.Package{p, p, {Ecosystem: p.Ecosystem, Name: dep, Licenses: []string{lic, "x" + lic}}}}
		var buf bytes.Buffer
		if err := Encode(&buf, inv, fixedMeta); err != nil {
			t.Fatal(err)
		}
		if err := schematest.SPDXError(buf.Bytes()); err != nil {
			t.Fatalf("invalid document: %v\n%s", err, buf.Bytes())
		}
		var doc struct {
			DocumentNamespace string
			Packages          []struct {
				SPDXID          string `json:"SPDXID"`
				LicenseDeclared string `json:"licenseDeclared"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if u, err := url.Parse(doc.DocumentNamespace); err != nil || !u.IsAbs() || strings.Contains(doc.DocumentNamespace, "#") {
			t.Fatalf("documentNamespace %q", doc.DocumentNamespace)
		}
		seen := map[string]bool{}
		for _, p := range doc.Packages {
			if !spdxIDPattern.MatchString(p.SPDXID) || seen[p.SPDXID] {
				t.Fatalf("SPDXID %q malformed or repeated", p.SPDXID)
			}
			seen[p.SPDXID] = true
			if _, ok := license.Expression(p.LicenseDeclared); !ok && p.LicenseDeclared != noAssertion {
				t.Fatalf("licenseDeclared %q does not parse", p.LicenseDeclared)
			}
		}
	})
}
