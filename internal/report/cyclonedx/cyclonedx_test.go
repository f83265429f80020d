package cyclonedx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/uuid"
	"github.com/package-url/packageurl-go"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/internal/fixture"
	"berth.dev/berth/internal/report/internal/indentjson"
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
	golden.Check(t, filepath.Join("testdata", "kitchen-sink.cdx.json"), out)
	doc := checkDocument(t, out, inv)

	if got := doc.Metadata.Component; got.Type != cdx.ComponentTypeContainer || got.Name != "kitchen-sink" || got.Version != "latest" {
		t.Errorf("metadata.component = %s %q %q, want container kitchen-sink latest", got.Type, got.Name, got.Version)
	}
	if got := (*doc.Metadata.Component.Hashes)[0].Value; got != "3167c5a45f029a23a7ad667739244fbcaf04072911c6e32cd6d2b8a0da440383" {
		t.Errorf("image hash = %s", got)
	}
	want := map[string]struct {
		typ      cdx.ComponentType
		licenses string
	}{
		"debian":                           {cdx.ComponentTypeOS, ""},
		"libc6":                            {cdx.ComponentTypeLibrary, "id:LGPL-2.1-or-later name:GPL-2"},
		"perl-base":                        {cdx.ComponentTypeLibrary, "expr:GPL-1.0-or-later OR Artistic-1.0-Perl"},
		"requests":                         {cdx.ComponentTypeLibrary, "name:Apache 2.0"},
		"lodash":                           {cdx.ComponentTypeLibrary, "id:MIT"},
		"org.apache.commons:commons-lang3": {cdx.ComponentTypeLibrary, "id:Apache-2.0"},
	}
	byName := map[string][]cdx.Component{}
	refName := map[string]string{}
	for _, c := range *doc.Components {
		full := c.Name
		if c.Group != "" {
			full = c.Group + ":" + c.Name
		}
		byName[full] = append(byName[full], c)
		refName[c.BOMRef] = full
	}
	for name, w := range want {
		cs := byName[name]
		if len(cs) == 0 {
			t.Errorf("no component %s", name)
			continue
		}
		for _, c := range cs {
			if c.Type != w.typ || describeLicenses(c.Licenses) != w.licenses {
				t.Errorf("%s: type %s licenses %q, want %s %q", c.BOMRef, c.Type, describeLicenses(c.Licenses), w.typ, w.licenses)
			}
		}
	}
	// lodash is found by the lockfile and the installed-package analyzers,
	// which the inventory merges into one package: one component whose ref
	// is its purl. (Shared purls are the awkward inputs' business.)
	if l := byName["lodash"]; len(l) != 1 || l[0].BOMRef != "pkg:npm/lodash@4.17.15" {
		t.Errorf("lodash components %+v", l)
	}

	deps := map[string][]string{}
	for _, d := range *doc.Dependencies {
		for _, r := range *d.Dependencies {
			deps[refName[d.Ref]] = append(deps[refName[d.Ref]], refName[r])
		}
	}
	for name, want := range map[string][]string{
		"python3": {"libpython3-stdlib", "python3-minimal", "python3.11"},
		// adduser depends on debconf-2.0, a virtual package: left out.
		"adduser":                        {"debconf", "passwd"},
		"example.com/kitchensink/ks-app": {"golang.org/x/net", "golang.org/x/text", "stdlib"},
		"requests":                       {"certifi", "charset-normalizer", "idna", "urllib3"},
	} {
		if got := deps[name]; !slices.Equal(got, want) {
			t.Errorf("%s depends on %v, want %v", name, got, want)
		}
	}
}

func describeLicenses(l *cdx.Licenses) string {
	if l == nil {
		return ""
	}
	var parts []string
	for _, c := range *l {
		switch {
		case c.Expression != "":
			parts = append(parts, "expr:"+c.Expression)
		case c.License.ID != "":
			parts = append(parts, "id:"+c.License.ID)
		default:
			parts = append(parts, "name:"+c.License.Name)
		}
	}
	return join(parts)
}

func join(parts []string) string {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p)
	}
	return b.String()
}

func TestAwkwardInputs(t *testing.T) {
	for _, tc := range fixture.AwkwardInputs() {
		t.Run(tc.Name, func(t *testing.T) {
			out := encode(t, tc.Inv)
			golden.Check(t, filepath.Join("testdata", "awkward", safeName(tc.Name)+".cdx.json"), out)
			checkDocument(t, out, tc.Inv)
		})
	}
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == ' ' {
			b[i] = '-'
		}
	}
	return string(b)
}

func TestDuplicatePurlsKeepEveryCopy(t *testing.T) {
	inv := fixture.AwkwardInputs()[3].Inv
	doc := checkDocument(t, encode(t, inv), inv)
	var lodash []string
	for _, c := range *doc.Components {
		if c.Name == "lodash" {
			lodash = append(lodash, c.BOMRef)
			if c.PackageURL != "pkg:npm/lodash@4.17.15" {
				t.Errorf("purl %q changed by disambiguation", c.PackageURL)
			}
		}
	}
	if len(lodash) != 3 {
		t.Fatalf("lodash components = %v, want 3", lodash)
	}
	// The app's dependency resolves to the lodash from its own lockfile.
	for _, d := range *doc.Dependencies {
		if d.Ref == "pkg:npm/app@1.0.0" {
			if len(*d.Dependencies) != 1 || !slices.Contains(lodash[1:], (*d.Dependencies)[0]) {
				t.Errorf("app depends on %v, want the /srv lodash among %v", *d.Dependencies, lodash[1:])
			}
		}
	}
}

func TestDocumentIsStable(t *testing.T) {
	inv := fixture.KitchenSink(t)
	first := encode(t, inv)
	// Shuffle the input: the document must not change.
	slices.Reverse(inv.Packages)
	if second := encode(t, inv); !bytes.Equal(first, second) {
		t.Error("package order of the inventory changes the document")
	}
}

func TestEncodeDoesNotModifyInventory(t *testing.T) {
	inv := fixture.KitchenSink(t)
	before, _ := json.Marshal(inv)
	encode(t, inv)
	after, _ := json.Marshal(inv)
	if !bytes.Equal(before, after) {
		t.Error("Encode modified its input")
	}
}

func TestDefaultsFilledIn(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, &inventory.Inventory{Source: "x"}, bom.Meta{}); err != nil {
		t.Fatal(err)
	}
	schematest.CycloneDX(t, buf.Bytes())
	var doc cdx.BOM
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, doc.Metadata.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", doc.Metadata.Timestamp, err)
	}
	if _, err := uuid.Parse(doc.SerialNumber[len("urn:uuid:"):]); err != nil || doc.SerialNumber == "urn:uuid:"+uuid.Nil.String() {
		t.Errorf("serialNumber %q is not a fresh UUID", doc.SerialNumber)
	}
}

func TestLicenses(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"", "  "}, ""},
		{[]string{"MIT"}, "id:MIT"},
		{[]string{"mit", "MIT"}, "id:MIT"},
		{[]string{"MIT OR Apache-2.0"}, "expr:MIT OR Apache-2.0"},
		{[]string{"GPL-2.0+"}, "expr:GPL-2.0+"},
		{[]string{"LicenseRef-acme"}, "expr:LicenseRef-acme"},
		{[]string{"MIT OR Apache-2.0", "BSD-3-Clause"}, "name:MIT OR Apache-2.0 id:BSD-3-Clause"},
		{[]string{"Apache 2.0"}, "name:Apache 2.0"},
		{[]string{"GPL-2", "GPL-2"}, "name:GPL-2"},
	}
	for _, tt := range tests {
		// Through JSON, as a reader of the document sees the licenses.
		raw, err := json.Marshal(licenses(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		var l *cdx.Licenses
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		if got := describeLicenses(l); got != tt.want {
			t.Errorf("licenses(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitName(t *testing.T) {
	tests := []struct {
		eco               inventory.Ecosystem
		name, group, rest string
	}{
		{inventory.Maven, "org.apache.commons:commons-lang3", "org.apache.commons", "commons-lang3"},
		{inventory.Maven, "commons-lang3", "", "commons-lang3"},
		{inventory.Maven, ":x", "", ":x"},
		{inventory.NPM, "@types/node", "@types", "node"},
		{inventory.NPM, "@types/", "", "@types/"},
		{inventory.NPM, "lodash", "", "lodash"},
		{inventory.Go, "golang.org/x/net", "", "golang.org/x/net"},
		{inventory.Deb, "a:b", "", "a:b"},
	}
	for _, tt := range tests {
		if g, r := splitName(tt.eco, tt.name); g != tt.group || r != tt.rest {
			t.Errorf("splitName(%s, %q) = %q, %q; want %q, %q", tt.eco, tt.name, g, r, tt.group, tt.rest)
		}
	}
}

// TestValidatorRejects proves that schema validation can fail: a document
// with an unknown license id, or a component without a type, is refused.
func TestValidatorRejects(t *testing.T) {
	inv := &inventory.Inventory{Source: "x", Packages: []inventory.Package{{Ecosystem: inventory.NPM, Name: "a", Version: "1", Licenses: []string{"MIT"}}}}
	good := encode(t, inv)
	for name, bad := range map[string][]byte{
		"unknown license id": bytes.Replace(good, []byte(`"id": "MIT"`), []byte(`"id": "Not-A-License"`), 1),
		"no component type":  bytes.Replace(good, []byte(`"type": "library",`), nil, 1),
		"bad serial number":  bytes.Replace(good, []byte(`urn:uuid:`), []byte(`urn:x:`), 1),
	} {
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if err := schematest.CycloneDXError(bad); err == nil {
			t.Errorf("%s: schema accepted the document", name)
		}
	}
}

// checkDocument validates out against the CycloneDX 1.6 schema and checks
// what the schema cannot: unique bom-refs, dependencies that point at
// components, parseable purls, known SPDX license ids, and one component
// per package.
func checkDocument(t *testing.T, out []byte, inv *inventory.Inventory) *cdx.BOM {
	t.Helper()
	schematest.CycloneDX(t, out)
	var doc cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&doc); err != nil {
		t.Fatalf("cyclonedx-go cannot decode the document: %v", err)
	}
	sameAsCycloneDXGo(t, out, &doc)
	if doc.SpecVersion != cdx.SpecVersion1_6 {
		t.Errorf("specVersion %s", doc.SpecVersion)
	}
	refs := map[string]bool{doc.Metadata.Component.BOMRef: true}
	var comps []cdx.Component
	if doc.Components != nil {
		comps = *doc.Components
	}
	wantComps := len(inv.Packages)
	if inv.Distro != nil {
		wantComps++
	}
	if len(comps) != wantComps {
		t.Errorf("%d components, want %d", len(comps), wantComps)
	}
	for _, c := range append(comps, *doc.Metadata.Component) {
		if c.BOMRef == "" {
			t.Errorf("component %q without bom-ref", c.Name)
		}
		if c.Type != cdx.ComponentTypeContainer && refs[c.BOMRef] {
			t.Errorf("bom-ref %q twice", c.BOMRef)
		}
		refs[c.BOMRef] = true
		if c.PackageURL != "" {
			if _, err := packageurl.FromString(c.PackageURL); err != nil {
				t.Errorf("component %q: purl %q: %v", c.Name, c.PackageURL, err)
			}
		}
		if c.Licenses != nil {
			for _, l := range *c.Licenses {
				if l.License != nil && l.License.ID != "" {
					if _, ok := license.ID(l.License.ID); !ok {
						t.Errorf("component %q: license id %q is not SPDX", c.Name, l.License.ID)
					}
				}
				if l.Expression != "" {
					if _, ok := license.Expression(l.Expression); !ok {
						t.Errorf("component %q: expression %q is not SPDX", c.Name, l.Expression)
					}
				}
			}
		}
	}
	if doc.Dependencies != nil {
		for _, d := range *doc.Dependencies {
			if !refs[d.Ref] {
				t.Errorf("dependency ref %q names no component", d.Ref)
			}
			for _, r := range *d.Dependencies {
				if !refs[r] {
					t.Errorf("%q depends on %q, which names no component", d.Ref, r)
				}
			}
		}
	}
	return &doc
}

// sameAsCycloneDXGo checks that out, which decodes to doc, is what
// cyclonedx-go's types write for doc: berth's own structs must keep its
// field order, omitempty and escaping. Invalid UTF-8 does not round-trip
// byte for byte (written as \ufffd, read back as the character), so a
// document with a replacement character is not compared.
func sameAsCycloneDXGo(t testing.TB, out []byte, doc *cdx.BOM) {
	t.Helper()
	if bytes.Contains(out, []byte(`\ufffd`)) {
		return
	}
	var again bytes.Buffer
	if err := indentjson.Encode(&again, doc); err != nil {
		t.Fatalf("cyclonedx-go cannot encode the document: %v", err)
	}
	if !bytes.Equal(out, again.Bytes()) {
		t.Errorf("cyclonedx-go writes the document differently:\n%s", firstDiff(out, again.Bytes()))
	}
}

func firstDiff(a, b []byte) string {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(al), len(bl)) {
		if !bytes.Equal(al[i], bl[i]) {
			return fmt.Sprintf("line %d:\n berth:        %s\n cyclonedx-go: %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines, cyclonedx-go %d", len(al), len(bl))
}

// TestEscapingLikeCycloneDXGo: cyclonedx-go wrote license objects and
// metadata.tools with json.Marshal, which escapes <, > and & although the
// document is written without HTML escaping; berth's structs do the same.
func TestEscapingLikeCycloneDXGo(t *testing.T) {
	inv := &inventory.Inventory{Source: "a&b<c>", Packages: []inventory.Package{{
		Ecosystem: inventory.NPM, Name: "x&y", Version: "1<2", PURL: "pkg:npm/x@1?a=b&c=d",
		Licenses: []string{"AT&T <proprietary>", "MIT"},
	}, {
		Ecosystem: inventory.NPM, Name: "z", Version: "1", Licenses: []string{"R&D"},
	}}}
	meta := fixedMeta
	meta.ToolVersion = "1.0.0+dirty<&>"
	var buf bytes.Buffer
	if err := Encode(&buf, inv, meta); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	for _, want := range []string{`"name": "AT\u0026T \u003cproprietary\u003e"`, `"name": "R\u0026D"`, `"version": "1.0.0+dirty\u003c\u0026\u003e"`, `"value": "a&b<c>"`, `"name": "x&y"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("no %s in\n%s", want, out)
		}
	}
	checkDocument(t, out, inv)
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

// FuzzEncode feeds arbitrary package data through the encoder: whatever
// the analyzers hand over, the document must stay valid CycloneDX with
// unique bom-refs.
func FuzzEncode(f *testing.F) {
	f.Add("oci-archive:/x/app.tar:1", "npm", "@scope/na me", "1.0.0 beta", "MIT OR Apache-2.0", "pkg:npm/x@1", "lib")
	f.Add("", "", "", "", "GPL-2+", "", "")
	f.Add("app@sha256:00", "maven", "g:a", "(devel)", "LicenseRef-x", "pkg:npm/x@1", "g:a")
	f.Fuzz(func(t *testing.T, source, eco, name, version, lic, purl, dep string) {
		p := inventory.Package{Ecosystem: inventory.Ecosystem(eco), Name: name, Version: version, PURL: purl,
			Licenses: []string{lic}, Locations: []string{name}, DependsOn: []string{dep}}
		inv := &inventory.Inventory{Source: source, Packages: []inventory.Package{p, p, {Ecosystem: p.Ecosystem, Name: dep, Licenses: []string{lic, lic + " "}}}}
		var buf bytes.Buffer
		if err := Encode(&buf, inv, fixedMeta); err != nil {
			t.Fatal(err)
		}
		if err := schematest.CycloneDXError(buf.Bytes()); err != nil {
			t.Fatalf("invalid document: %v\n%s", err, buf.Bytes())
		}
		var doc cdx.BOM
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		sameAsCycloneDXGo(t, buf.Bytes(), &doc)
		refs := map[string]bool{doc.Metadata.Component.BOMRef: true}
		for _, c := range *doc.Components {
			if refs[c.BOMRef] {
				t.Fatalf("bom-ref %q twice", c.BOMRef)
			}
			refs[c.BOMRef] = true
		}
	})
}

// TestOverlongVersion: CycloneDX allows versions of at most 1,024
// characters. A longer one (no ecosystem writes it; a hostile lockfile
// can) is left out of the component, whose purl keeps it, so that the
// document stays valid; 1,024 characters, multi-byte ones too, stay.
func TestOverlongVersion(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		kept          bool
	}{
		{"1,024 characters", strings.Repeat("1", 1024), true},
		{"1,024 two-byte characters", strings.Repeat("é", 1024), true},
		{"1,025 characters", strings.Repeat("1", 1025), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			purl := "pkg:npm/x@" + tc.version
			inv := &inventory.Inventory{Packages: []inventory.Package{{Ecosystem: inventory.NPM, Name: "x", Version: tc.version, PURL: purl, Analyzer: "npm-lock"}}}
			doc := checkDocument(t, encode(t, inv), inv)
			c := (*doc.Components)[0]
			if got := c.Version == tc.version; got != tc.kept {
				t.Errorf("version kept = %v, want %v (got %d bytes)", got, tc.kept, len(c.Version))
			}
			if !tc.kept && c.Version != "" {
				t.Errorf("version cut to %d bytes, not left out", len(c.Version))
			}
			if c.PackageURL != purl {
				t.Errorf("purl changed: %.40s…", c.PackageURL)
			}
		})
	}
}
