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

// TestParseSkipsBadLines: lines that are no coordinate are skipped and
// counted in the error; the coordinates around them are still read.
func TestParseSkipsBadLines(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
		wantErr    string
	}{
		{"conflict markers", "# a lockfile\n<<<<<<< HEAD\ng:a:1.0=runtimeClasspath\n=======\n>>>>>>> branch\ng:b:2.0=testRuntimeClasspath\n",
			[]string{"g:a@1.0", "g:b@2.0 dev"}, "line 2 and 2 more: want group:artifact:version"},
		{"one bad line", "g:a:1.0=runtimeClasspath\ng:b=runtimeClasspath\n", []string{"g:a@1.0"}, "line 2: want group:artifact:version"},
		{"clean", "g:a:1.0=runtimeClasspath\nempty=\n", []string{"g:a@1.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := Parse([]byte(tt.file), "/app/gradle.lockfile", "gradle-lockfile")
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
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
	analyzertest.FuzzParsePartial(f, Parse, data)
}
