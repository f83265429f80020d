package mavenpom

import (
	"os"
	"reflect"
	"testing"

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

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/pom.xml")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
