package gradle

import (
	"os"
	"reflect"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/gradle.lockfile")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/gradle.lockfile", "gradle-lockfile")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"com.fasterxml.jackson.core:jackson-core@2.13.4",
		"com.fasterxml.jackson.core:jackson-databind@2.13.4.2",
		"junit:junit@4.13.2 dev",
		"org.hamcrest:hamcrest-core@1.3 dev",
		"org.slf4j:slf4j-api@1.7.36",
	}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if _, err := Parse([]byte("not a coordinate=x\n"), "/x", "gradle-lockfile"); err == nil {
		t.Error("a line that is no coordinate parsed")
	}
}

func TestRequired(t *testing.T) {
	for p, want := range map[string]bool{
		"app/gradle.lockfile":                                   true,
		"app/buildscript-gradle.lockfile":                       true,
		"app/gradle/dependency-locks/compileClasspath.lockfile": true,
		"app/other.lockfile":                                    false,
	} {
		if got := isLockfile(p); got != want {
			t.Errorf("isLockfile(%q) = %v", p, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/gradle.lockfile")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
