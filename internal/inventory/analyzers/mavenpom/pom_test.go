package mavenpom

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzertest"
)

// TestParse: literal versions, properties (nested), project coordinates
// inherited from the parent, versions from the POM's own
// dependencyManagement; what needs another POM, a range or a property
// cycle is not reported.
func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/pom.xml", "maven-pom")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"com.example:shop-api@3.1.0",
		"com.fasterxml.jackson.core:jackson-databind@2.13.4.2",
		"junit:junit@4.13.2 dev",
		"org.apache.commons:commons-text@1.9",
	}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestBadInput(t *testing.T) {
	for _, in := range []string{
		"<project><artifactId>x</artifactId>",
		"<notaproject/>",
		`<?xml version="1.0" encoding="EBCDIC"?><project><artifactId>x</artifactId></project>`,
	} {
		if pkgs, err := Parse([]byte(in), "/pom.xml", "maven-pom"); err == nil {
			t.Errorf("%q: no error, %+v", in, pkgs)
		}
	}
	latin1 := []byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><project><artifactId>caf\xe9</artifactId><dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId><version>1</version></dependency></dependencies></project>")
	if pkgs, err := Parse(latin1, "/pom.xml", "maven-pom"); err != nil || len(pkgs) != 1 {
		t.Errorf("Latin-1 POM: %+v, %v", pkgs, err)
	}
}

// TestParseWithoutOwnCoordinates: a POM without its own artifactId or
// version still declares its dependencies; a ${project.*} reference it
// cannot resolve leaves that dependency out.
func TestParseWithoutOwnCoordinates(t *testing.T) {
	tests := []struct {
		name, pom string
		want      []string
	}{
		{"no artifactId", `<project><dependencies><dependency><groupId>io.netty</groupId><artifactId>netty-all</artifactId><version>4.1.42.Final</version></dependency></dependencies></project>`,
			[]string{"io.netty:netty-all@4.1.42.Final"}},
		{"managed version, no coordinates", `<project><dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId></dependency></dependencies><dependencyManagement><dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId><version>1.7.25</version></dependency></dependencies></dependencyManagement></project>`,
			[]string{"g:a@1.7.25"}},
		{"own version unresolved", `<project><groupId>g</groupId><dependencies><dependency><groupId>g</groupId><artifactId>sibling</artifactId><version>${project.version}</version></dependency></dependencies></project>`,
			[]string{}},
		{"nothing declared", `<project><groupId>g</groupId></project>`, []string{}},
		{"profile active by default", `<project><artifactId>x</artifactId><profiles>
<profile><id>on</id><activation><activeByDefault>true</activeByDefault></activation><properties><dep.version>1.2.3</dep.version></properties>
<dependencies><dependency><groupId>org.profile</groupId><artifactId>on-dep</artifactId><version>${dep.version}</version></dependency></dependencies></profile>
<profile><id>off</id><activation><property><name>env</name></property></activation>
<dependencies><dependency><groupId>org.profile</groupId><artifactId>off-dep</artifactId><version>2.0</version></dependency></dependencies></profile>
</profiles></project>`, []string{"org.profile:on-dep@1.2.3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := Parse([]byte(tt.pom), "/app/pom.xml", "maven-pom")
			if err != nil {
				t.Fatal(err)
			}
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	for p, want := range map[string]bool{
		"src/app/pom.xml": true,
		"pom.xml":         true,
		"opt/app/classes/META-INF/maven/g/a/pom.xml": false,
		"app/pom.xml.bak": false,
	} {
		if got := isPOM(p); got != want {
			t.Errorf("isPOM(%q) = %v", p, got)
		}
	}
}

// TestParents: each case is a tree of testdata/parents, read as the file
// system of one layer; file is the POM whose set is checked. A POM takes
// from the parents it finds on disk, at relativePath, with matching
// coordinates; a cycle leaves it alone, with a warning.
func TestParents(t *testing.T) {
	tests := []struct {
		name, root, file string
		want             []string
		warned           bool // a warning names file
	}{
		{"default ../pom.xml", "default", "orders/pom.xml", []string{
			"com.acme:audit@2.4.0", // ${project.parent.version}
			"com.acme:billing@2.4.0",
			"com.google.guava:guava@32.1.3-jre",
			"org.junit.jupiter:junit-jupiter@5.10.1 dev",
			"org.postgresql:postgresql@42.6.0",
			"org.slf4j:slf4j-api@2.0.9",
		}, false},
		{"the parent reports its own", "default", "pom.xml", []string{
			"org.junit.jupiter:junit-jupiter@5.10.1 dev",
			"org.slf4j:slf4j-api@2.0.9",
		}, false},
		{"relativePath to a file, not ../pom.xml", "relpath-file", "services/api/pom.xml",
			[]string{"io.netty:netty-handler@4.1.100.Final"}, false},
		{"relativePath to a directory", "relpath-dir", "app/pom.xml",
			[]string{"com.fasterxml.jackson.core:jackson-databind@2.16.1"}, false},
		{"empty relativePath: not on disk", "relpath-empty", "lib/pom.xml",
			[]string{"org.lib:own@2.0"}, false},
		{"artifactId does not match", "mismatch", "artifact/pom.xml",
			[]string{"org.own:artifact-dep@1.0"}, false},
		{"groupId does not match", "mismatch", "group/pom.xml",
			[]string{"org.own:group-dep@1.0"}, false},
		{"version does not match", "mismatch", "version/pom.xml",
			[]string{"org.own:version-dep@1.0"}, false},
		{"no version in the ref", "mismatch", "no-version/pom.xml",
			[]string{"org.own:no-version-dep@1.0", "org.parent:leak@6.6.6"}, false},
		{"cycle", "cycle", "a/pom.xml", []string{"org.cycle:from-a@1.0"}, true},
		{"cycle, other side", "cycle", "b/pom.xml", []string{"org.cycle:from-b@1.0"}, true},
		{"relativePath out of the file system", "escape/root", "up/pom.xml",
			[]string{"org.own:up-dep@1.0"}, false},
		{"absolute relativePath", "escape/root", "abs/pom.xml",
			[]string{"org.own:abs-dep@1.0"}, false},
		{"grandparent", "grandparent", "mid/leaf/pom.xml", []string{
			"com.acme:sibling@5",
			"com.google.protobuf:protobuf-java-util@3.25.1",
			"com.google.protobuf:protobuf-java@3.25.1",
			"org.mid:mid-lib@1.1",
		}, false},
		{"child overrides, exact range", "override", "svc/pom.xml", []string{
			"com.fasterxml.jackson.core:jackson-databind@2.15.0",
			"com.h2database:h2@2.2.224",
			"commons-io:commons-io@2.15.1",
			"org.exact:pinned@1.2.3",
			"org.yaml:snakeyaml@2.2", // the parent's dependency, the child's property
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Analyzer{}.Analyze(context.Background(), os.DirFS(filepath.Join("testdata/parents", tt.root)))
			if err != nil {
				t.Fatal(err)
			}
			var got []inventory.Package
			for _, s := range res.Sets {
				if s.Origin == tt.file {
					got = s.Packages
				}
			}
			for _, p := range got {
				if !slices.Equal(p.Locations, []string{"/" + tt.file}) {
					t.Errorf("%s at %q, want /%s", p.Name, p.Locations, tt.file)
				}
			}
			if g := analyzertest.Summary(got); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got %q\nwant %q", g, tt.want)
			}
			warned := false
			for _, w := range res.Warns {
				warned = warned || strings.HasPrefix(w, "/"+tt.file+":")
			}
			if warned != tt.warned {
				t.Errorf("warned %v, want %v: %q", warned, tt.warned, res.Warns)
			}
		})
	}
}

// TestParentsScan: what a parent declares and its child inherits is one
// package after the scan's merge, at both files.
func TestParentsScan(t *testing.T) {
	root, err := filepath.Abs("testdata/parents/default")
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Open(context.Background(), "dir:"+root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{Analyzer{}}}
	inv, err := s.Scan(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, p := range inv.Packages {
		locs := slices.Clone(p.Locations)
		slices.Sort(locs)
		got[p.Name+"@"+p.Version] = locs
	}
	both := []string{"/orders/pom.xml", "/pom.xml"}
	want := map[string][]string{
		"com.acme:audit@2.4.0":                   {"/orders/pom.xml"},
		"com.acme:billing@2.4.0":                 {"/orders/pom.xml"},
		"com.google.guava:guava@32.1.3-jre":      {"/orders/pom.xml"},
		"org.postgresql:postgresql@42.6.0":       {"/orders/pom.xml"},
		"org.junit.jupiter:junit-jupiter@5.10.1": both,
		"org.slf4j:slf4j-api@2.0.9":              both,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/pom.xml")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}

// FuzzAnalyze reads a child and its parent at ../pom.xml: whatever they
// hold, no error, no panic, every package named, at the child's or the
// parent's file.
func FuzzAnalyze(f *testing.F) {
	for _, seed := range [][2]string{
		{"default/orders/pom.xml", "default/pom.xml"},
		{"override/svc/pom.xml", "override/pom.xml"},
		{"cycle/a/pom.xml", "cycle/b/pom.xml"},
	} {
		child, err := os.ReadFile(filepath.Join("testdata/parents", seed[0]))
		if err != nil {
			f.Fatal(err)
		}
		parent, err := os.ReadFile(filepath.Join("testdata/parents", seed[1]))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(child, parent)
	}
	f.Fuzz(func(t *testing.T, child, parent []byte) {
		files := fstest.MapFS{"app/mod/pom.xml": {Data: child}, "app/pom.xml": {Data: parent}}
		res, err := Analyzer{}.Analyze(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Sets {
			for _, p := range s.Packages {
				if p.Name == "" || p.Version == "" || !slices.Equal(p.Locations, []string{"/" + s.Origin}) {
					t.Fatalf("%s: %+v", s.Origin, p)
				}
			}
		}
	})
}
