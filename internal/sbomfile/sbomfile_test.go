package sbomfile

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/cyclonedx"
)

func TestFromPURL(t *testing.T) {
	tests := []struct {
		purl   string
		want   inventory.Package
		distro string
		ok     bool
	}{
		{"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
			inventory.Package{Ecosystem: inventory.Deb, Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64", SourceName: "glibc", SourceVersion: "2.36-9+deb12u4"}, "debian 12", true},
		{"pkg:deb/debian/bash@5.2.15-2%2Bb2?distro=debian-12&upstream=bash%405.2.15-2",
			inventory.Package{Ecosystem: inventory.Deb, Name: "bash", Version: "5.2.15-2+b2", SourceName: "bash", SourceVersion: "5.2.15-2"}, "debian 12", true},
		{"pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1",
			inventory.Package{Ecosystem: inventory.APK, Name: "musl", Version: "1.2.4-r2", Arch: "x86_64", SourceName: "musl", SourceVersion: "1.2.4-r2"}, "alpine 3.19.1", true},
		{"pkg:rpm/redhat/openssl@3.0.7-25.el9?epoch=1&distro=rhel-9.4",
			inventory.Package{Ecosystem: inventory.RPM, Name: "openssl", Version: "1:3.0.7-25.el9", SourceName: "openssl", SourceVersion: "1:3.0.7-25.el9"}, "rhel 9.4", true},
		{"pkg:npm/%40babel/core@7.22.0", inventory.Package{Ecosystem: inventory.NPM, Name: "@babel/core", Version: "7.22.0"}, "", true},
		{"pkg:golang/golang.org/x/net@v0.7.0", inventory.Package{Ecosystem: inventory.Go, Name: "golang.org/x/net", Version: "v0.7.0"}, "", true},
		{"pkg:golang/stdlib@1.26.8", inventory.Package{Ecosystem: inventory.Go, Name: "stdlib", Version: "go1.26.8"}, "", true},
		{"pkg:maven/org.apache.commons/commons-text@1.9", inventory.Package{Ecosystem: inventory.Maven, Name: "org.apache.commons:commons-text", Version: "1.9"}, "", true},
		{"pkg:pypi/requests@2.28.1", inventory.Package{Ecosystem: inventory.PyPI, Name: "requests", Version: "2.28.1"}, "", true},
		{"pkg:generic/openssl@3.0", inventory.Package{}, "", false},
		{"not a purl", inventory.Package{}, "", false},
	}
	for _, tc := range tests {
		p, d, _, ok := fromPURL(tc.purl)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v", tc.purl, ok)
			continue
		}
		if !ok {
			continue
		}
		if p.Ecosystem != tc.want.Ecosystem || p.Name != tc.want.Name || p.Version != tc.want.Version || p.Arch != tc.want.Arch ||
			p.SourceName != tc.want.SourceName || p.SourceVersion != tc.want.SourceVersion {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.purl, p, tc.want)
		}
		gotDistro := ""
		if d != nil {
			gotDistro = d.ID + " " + d.VersionID
		}
		if gotDistro != tc.distro {
			t.Errorf("%s: distro %q, want %q", tc.purl, gotDistro, tc.distro)
		}
	}
}

// TestForeignDocuments reads documents as syft and Trivy write them: the
// OS release from the operating-system component or the purl, the source
// package from the purl's upstream or Trivy's properties, duplicates
// folded, components berth cannot match counted.
func TestForeignDocuments(t *testing.T) {
	cdx := `{"bomFormat":"CycloneDX","specVersion":"1.5",
	  "metadata":{"component":{"type":"container","name":"registry.example/app","version":"sha256:` + strings.Repeat("a", 64) + `"}},
	  "components":[
	    {"type":"operating-system","name":"debian","version":"12.5","description":"Debian GNU/Linux 12 (bookworm)"},
	    {"type":"library","name":"libssl3","version":"3.0.11-1~deb12u2","purl":"pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12.5",
	     "properties":[{"name":"aquasecurity:trivy:SrcName","value":"openssl"},{"name":"aquasecurity:trivy:SrcVersion","value":"3.0.11"},{"name":"aquasecurity:trivy:SrcRelease","value":"1~deb12u2"}]},
	    {"type":"library","name":"lodash","version":"4.17.15","purl":"pkg:npm/lodash@4.17.15","components":[
	      {"type":"library","name":"minimist","version":"1.2.0","purl":"pkg:npm/minimist@1.2.0"}]},
	    {"type":"library","name":"lodash","version":"4.17.15","purl":"pkg:npm/lodash@4.17.15"},
	    {"type":"file","name":"app.jar"},
	    {"type":"library","name":"zlib","purl":"pkg:generic/zlib@1.3"}
	  ]}`
	inv, err := Read(strings.NewReader(cdx), "app.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Source != "registry.example/app" || inv.Digest != "sha256:"+strings.Repeat("a", 64) {
		t.Errorf("image %q %q", inv.Source, inv.Digest)
	}
	if inv.Distro == nil || inv.Distro.ID != "debian" || inv.Distro.VersionID != "12.5" {
		t.Errorf("distro %+v", inv.Distro)
	}
	var names []string
	for _, p := range inv.Packages {
		names = append(names, p.Name)
		if p.Name == "libssl3" && (p.SourceName != "openssl" || p.SourceVersion != "3.0.11-1~deb12u2") {
			t.Errorf("libssl3's source: %s %s", p.SourceName, p.SourceVersion)
		}
		if p.PURL == "" {
			t.Errorf("%s has no purl", p.Name)
		}
	}
	if !slices.Equal(names, []string{"libssl3", "lodash", "minimist"}) {
		t.Errorf("packages %v, want libssl3, lodash, minimist (lodash once)", names)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "1 without a package URL, 1 of type pkg:generic") {
		t.Errorf("warnings %q", inv.Warnings)
	}

	spdx := `{"spdxVersion":"SPDX-2.3","name":"app","packages":[
	  {"name":"alpine","versionInfo":"3.19.1","primaryPackagePurpose":"OPERATING-SYSTEM"},
	  {"name":"musl","versionInfo":"1.2.4-r2","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&upstream=musl"}]},
	  {"name":"requests","versionInfo":"2.28.1","sourceInfo":"acquired package info from /usr/lib/python3/site-packages/requests-2.28.1.dist-info/METADATA; in layer sha256:` + strings.Repeat("b", 64) + `",
	   "externalRefs":[{"referenceCategory":"PACKAGE_MANAGER","referenceType":"purl","referenceLocator":"pkg:pypi/requests@2.28.1"}]}]}`
	inv, err = Read(strings.NewReader(spdx), "app.spdx.json")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Source != "app.spdx.json" || inv.Distro == nil || inv.Distro.ID != "alpine" || len(inv.Packages) != 2 {
		t.Fatalf("SPDX inventory: %+v", inv)
	}
	req := inv.Packages[1]
	if req.Name != "requests" || len(req.Locations) != 1 || req.Layer != "sha256:"+strings.Repeat("b", 64) || len(inv.Layers) != 1 {
		t.Errorf("requests from SPDX: %+v, layers %v", req, inv.Layers)
	}
}

func TestNotAnSBOM(t *testing.T) {
	for _, doc := range []string{`{"schemaVersion":1,"inventory":{}}`, `not json`, `{"bomFormat":"SWID"}`, `{"spdxVersion":"SPDX-3.0"}`} {
		if _, err := Read(strings.NewReader(doc), "x.json"); !errors.Is(err, ErrNotSBOM) {
			t.Errorf("%s: %v, want ErrNotSBOM", doc, err)
		}
	}
	huge := strings.NewReader(`{"bomFormat":"CycloneDX","components":[` + strings.Repeat(" ", 4096) + `]}`)
	if _, err := read(huge, "huge.json", 4096); err == nil || !strings.Contains(err.Error(), "larger than 4096 bytes") {
		t.Errorf("an oversized document: %v", err)
	}
}

// TestBerthsOwnFlagsSurvive: an SBOM that berth wrote, read back for
// `berth scan sbom:…`, keeps which packages are dev-only and which are not
// from the registry, so a scan of the SBOM matches what a scan of the
// image matched.
func TestBerthsOwnFlagsSurvive(t *testing.T) {
	inv := &inventory.Inventory{Packages: []inventory.Package{
		{Ecosystem: inventory.NPM, Name: "@my-monorepo/client", Version: "1.0.0", PURL: "pkg:npm/%40my-monorepo/client@1.0.0", Analyzer: "npm-lock", Local: true},
		{Ecosystem: inventory.NPM, Name: "jest", Version: "29.0.0", PURL: "pkg:npm/jest@29.0.0", Analyzer: "npm-lock", Dev: true},
		{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.21", PURL: "pkg:npm/lodash@4.17.21", Analyzer: "npm-lock"},
	}}
	got := throughCycloneDX(t, inv)
	var flags []string
	for _, p := range got.Packages {
		flags = append(flags, fmt.Sprintf("%s dev=%v local=%v", p.Name, p.Dev, p.Local))
	}
	slices.Sort(flags)
	want := []string{"@my-monorepo/client dev=false local=true", "jest dev=true local=false", "lodash dev=false local=false"}
	if !slices.Equal(flags, want) {
		t.Errorf("got %q\nwant %q", flags, want)
	}
}

// TestOverlongNamesAndVersionsLeftOut: a document's package whose version
// is longer than 1,024 bytes is left out of the inventory, with the
// warning a scanned image's would get from the merge; the packages beside
// it are read. berth's own CycloneDX of an inventory that never passed
// the bound (a report stored before it) leaves such a version out of the
// component; it comes back from the purl, and is left out the same way.
func TestOverlongNamesAndVersionsLeftOut(t *testing.T) {
	long := strings.Repeat("9", 2000)
	var berths bytes.Buffer
	if err := cyclonedx.Encode(&berths, &inventory.Inventory{Packages: []inventory.Package{
		{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.21", PURL: "pkg:npm/lodash@4.17.21", Analyzer: "npm-lock"},
		{Ecosystem: inventory.NPM, Name: "evil", Version: long, PURL: "pkg:npm/evil@" + long, Analyzer: "npm-lock"},
	}}, bom.Meta{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, doc string
	}{
		{"CycloneDX", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
			{"type":"library","name":"lodash","version":"4.17.21","purl":"pkg:npm/lodash@4.17.21"},
			{"type":"library","name":"evil","version":"` + long + `","purl":"pkg:npm/evil@1.0.0"}]}`},
		{"SPDX", `{"spdxVersion":"SPDX-2.3","name":"app","packages":[
			{"name":"lodash","versionInfo":"4.17.21","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:npm/lodash@4.17.21"}]},
			{"name":"evil","versionInfo":"` + long + `","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:npm/evil@1.0.0"}]}]}`},
		{"berth's CycloneDX, the version only in the purl", berths.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Read(strings.NewReader(tt.doc), "app.json")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range inv.Packages {
				got = append(got, p.PURL)
			}
			if want := []string{"pkg:npm/lodash@4.17.21"}; !slices.Equal(got, want) {
				t.Errorf("packages %.200q, want %q", got, want)
			}
			want := []string{`1 package left out, its name or version longer than 1024 bytes: 1 npm ("evil")`}
			if !slices.Equal(inv.Warnings, want) {
				t.Errorf("warnings %.300q\nwant %q", inv.Warnings, want)
			}
		})
	}
}

// throughCycloneDX writes inv as berth's CycloneDX and reads it back, as
// `berth scan sbom:…` reads an SBOM berth wrote.
func throughCycloneDX(t *testing.T, inv *inventory.Inventory) *inventory.Inventory {
	t.Helper()
	var doc bytes.Buffer
	if err := cyclonedx.Encode(&doc, inv, bom.Meta{}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&doc, "berth.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	return got
}
