package bom

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
)

func TestDescribeImage(t *testing.T) {
	const digest = "sha256:3167c5a45f029a23a7ad667739244fbcaf04072911c6e32cd6d2b8a0da440383"
	tests := []struct {
		source, digest, arch string
		want                 Image
	}{
		{"ghcr.io/org/app:1.2", digest, "amd64", Image{Name: "ghcr.io/org/app", Version: "1.2", Digest: digest,
			PURL: "pkg:oci/app@" + digest + "?arch=amd64&repository_url=ghcr.io%2Forg%2Fapp&tag=1.2"}},
		{"localhost:5000/team/App", digest, "", Image{Name: "localhost:5000/team/App", Version: digest, Digest: digest,
			PURL: "pkg:oci/app@" + digest + "?repository_url=localhost:5000%2Fteam%2Fapp"}},
		{"alpine@" + digest, "", "", Image{Name: "alpine", Version: digest, Digest: digest,
			PURL: "pkg:oci/alpine@" + digest}},
		{"docker://debian:12", "", "", Image{Name: "debian", Version: "12"}},
		{"app@sha256:00", "", "", Image{Name: "app"}}, // a malformed digest is no digest
		{"oci-archive:/images/kitchen-sink.oci.tar:latest", digest, "", Image{Name: "kitchen-sink", Version: "latest", Digest: digest,
			PURL: "pkg:oci/kitchen-sink@" + digest + "?tag=latest"}},
		{"docker-archive:app.docker.tar", "", "", Image{Name: "app"}},
		{"oci-dir:./layout/", "", "", Image{Name: "layout"}},
		{"dir:/", "", "", Image{Name: "dir:/"}},
		{"", "", "", Image{Name: "image"}},
	}
	for _, tt := range tests {
		got := describeImage(&inventory.Inventory{Source: tt.source, Digest: tt.digest, Architecture: tt.arch})
		if got != tt.want {
			t.Errorf("describeImage(%q) =\n  %+v\nwant\n  %+v", tt.source, got, tt.want)
		}
	}
}

func TestRefsUniqueAndStable(t *testing.T) {
	lockA, lockB := []string{"/a/package-lock.json"}, []string{"/b/package-lock.json"}
	inv := &inventory.Inventory{
		Source: "app",
		Distro: &inventory.Distro{ID: "debian", VersionID: "12"},
		Packages: []inventory.Package{
			{Ecosystem: inventory.NPM, Name: "x", Version: "1", PURL: "pkg:npm/x@1", Locations: lockB},
			{Ecosystem: inventory.NPM, Name: "x", Version: "1", PURL: "pkg:npm/x@1", Locations: lockA},
			{Ecosystem: inventory.NPM, Name: "x", Version: "1", PURL: "pkg:npm/x@1", Locations: lockA},
			{Ecosystem: inventory.NPM, Name: "y", Version: "1", PURL: "pkg:npm/y@1"},
			{Ecosystem: inventory.NPM, Name: "z"},
			// A package whose purl collides with the refs chosen for the
			// image and the OS must not take them.
			{Ecosystem: inventory.NPM, Name: "w", PURL: "berth-image:app"},
			{Ecosystem: inventory.NPM, Name: "v", PURL: "berth-os:debian@12"},
		},
	}
	b := Build(inv)
	seen := map[string]bool{b.ImageRef: true, b.OSRef: true}
	if len(seen) != 2 {
		t.Fatalf("image and OS share ref %q", b.ImageRef)
	}
	for _, p := range b.Packages {
		if seen[p.Ref] {
			t.Errorf("ref %q twice", p.Ref)
		}
		seen[p.Ref] = true
	}
	refs := map[string][]string{}
	for _, p := range b.Packages {
		refs[p.Name] = append(refs[p.Name], p.Ref)
	}
	if got := refs["y"]; got[0] != "pkg:npm/y@1" {
		t.Errorf("a unique purl is not its own ref: %q", got)
	}
	if got := refs["z"]; got[0] != "berth-package:npm/z@" {
		t.Errorf("ref without purl = %q", got)
	}
	if len(refs["x"]) != 3 {
		t.Fatalf("x refs %q", refs["x"])
	}
	for _, r := range refs["x"] {
		if !strings.HasPrefix(r, "pkg:npm/x@1?package-id=") {
			t.Errorf("shared purl ref %q lacks a package-id", r)
		}
	}
	if refs["w"][0] != "berth-image:app" || b.ImageRef != "berth-image:app-2" || b.OSRef != "berth-os:debian@12-2" {
		t.Errorf("colliding refs: package %q image %q, package %q os %q", refs["w"], b.ImageRef, refs["v"], b.OSRef)
	}
	// Input order does not change refs.
	rev := *inv
	rev.Packages = append([]inventory.Package(nil), inv.Packages...)
	for i, j := 0, len(rev.Packages)-1; i < j; i, j = i+1, j-1 {
		rev.Packages[i], rev.Packages[j] = rev.Packages[j], rev.Packages[i]
	}
	b2 := Build(&rev)
	for i := range b.Packages {
		if b.Packages[i].Ref != b2.Packages[i].Ref {
			t.Errorf("ref %d: %q, then %q after reversing the input", i, b.Packages[i].Ref, b2.Packages[i].Ref)
		}
	}
}

func TestResolveDependencies(t *testing.T) {
	l1, l2 := "sha256:1", "sha256:2"
	inv := &inventory.Inventory{Packages: []inventory.Package{
		{Ecosystem: inventory.NPM, Name: "app", Version: "1", Locations: []string{"/srv/package-lock.json"}, Layer: l2,
			DependsOn: []string{"lib", "lib", "missing", "app"}},
		{Ecosystem: inventory.NPM, Name: "lib", Version: "1", Locations: []string{"/app/package-lock.json"}, Layer: l2},
		{Ecosystem: inventory.NPM, Name: "lib", Version: "2", Locations: []string{"/srv/package-lock.json"}, Layer: l1},
		{Ecosystem: inventory.PyPI, Name: "lib", Version: "3", Locations: []string{"/srv/package-lock.json"}, Layer: l2},
		{Ecosystem: inventory.Deb, Name: "python3", Version: "1", Layer: l2, DependsOn: []string{"libc6"}},
		{Ecosystem: inventory.Deb, Name: "libc6", Version: "1", Layer: l1},
		{Ecosystem: inventory.Deb, Name: "libc6", Version: "2", Layer: l2},
	}}
	b := Build(inv)
	deps := map[string][]string{}
	for _, p := range b.Packages {
		for _, j := range p.Deps {
			deps[p.Name+"@"+p.Version] = append(deps[p.Name+"@"+p.Version], b.Packages[j].Name+"@"+b.Packages[j].Version)
		}
	}
	// The lockfile match beats the layer match, duplicates collapse, the
	// other ecosystem and the package itself are never chosen, unknown
	// names are left out.
	if got := deps["app@1"]; len(got) != 1 || got[0] != "lib@2" {
		t.Errorf("app depends on %v, want [lib@2]", got)
	}
	if got := deps["python3@1"]; len(got) != 1 || got[0] != "libc6@2" {
		t.Errorf("python3 depends on %v, want [libc6@2] (same layer)", got)
	}
}

func TestMetaResolved(t *testing.T) {
	m := Meta{}.Resolved()
	if m.Created.IsZero() || m.Created.Location().String() != "UTC" || m.Created.Nanosecond() != 0 {
		t.Errorf("Created = %v", m.Created)
	}
	if m.DocumentID.String() == "00000000-0000-0000-0000-000000000000" || m.ToolVersion != "dev" {
		t.Errorf("resolved meta %+v", m)
	}
	if other := (Meta{}).Resolved(); other.DocumentID == m.DocumentID {
		t.Error("two documents got the same ID")
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("oci-archive:/x/y.tar:latest", "npm", "a", "1", "pkg:npm/a@1", "b")
	f.Add("ghcr.io/o/r@sha256:00", "deb", "", "", "", "")
	f.Fuzz(func(t *testing.T, source, eco, name, version, purl, dep string) {
		p := inventory.Package{Ecosystem: inventory.Ecosystem(eco), Name: name, Version: version, PURL: purl, DependsOn: []string{dep, name}}
		inv := &inventory.Inventory{Source: source, Packages: []inventory.Package{p, p, {Ecosystem: inventory.Ecosystem(eco), Name: dep}}}
		b := Build(inv)
		seen := map[string]bool{b.ImageRef: true}
		for _, q := range b.Packages {
			if q.Ref == "" || seen[q.Ref] {
				t.Fatalf("ref %q empty or repeated", q.Ref)
			}
			seen[q.Ref] = true
			for _, j := range q.Deps {
				if j < 0 || j >= len(b.Packages) {
					t.Fatalf("dependency index %d out of range", j)
				}
			}
		}
		if b.Image.Name == "" {
			t.Fatal("image without name")
		}
	})
}

func TestCompareIsTotalOnDistinctPackages(t *testing.T) {
	base := inventory.Package{Ecosystem: inventory.NPM, Name: "a", Version: "1"}
	variants := []func(p *inventory.Package){
		func(p *inventory.Package) { p.Dev = true },
		func(p *inventory.Package) { p.Licenses = []string{"MIT"} },
		func(p *inventory.Package) { p.DependsOn = []string{"b"} },
		func(p *inventory.Package) { p.Analyzer = "npm-lock" },
		func(p *inventory.Package) { p.Locations = []string{"/x"} },
		func(p *inventory.Package) { p.SourceName = "s" },
	}
	for i, v := range variants {
		q := base
		v(&q)
		if Compare(&base, &q) == 0 || Compare(&base, &q) != -Compare(&q, &base) {
			t.Errorf("variant %d: Compare does not tell the packages apart consistently", i)
		}
	}
}
