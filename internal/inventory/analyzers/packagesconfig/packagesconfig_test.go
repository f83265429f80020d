package packagesconfig

import (
	"os"
	"reflect"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/packages.config")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/packages.config", "nuget-packages-config")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Microsoft.CodeAnalysis.NetAnalyzers@7.0.0 dev", "Newtonsoft.Json@12.0.3", "System.Net.Http@4.3.4"}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{`<packages><package id="x"/></packages>`, `<configuration/>`, `<packages>`} {
		if _, err := Parse([]byte(bad), "/p", "nuget-packages-config"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestParseSkipsBadPackages: an element without an id or a version is
// named in the error and the other elements are still read.
func TestParseSkipsBadPackages(t *testing.T) {
	tests := []struct {
		name, config string
		want         []string
		wantErr      string
	}{
		{"no version", `<packages><package id="A" version="1.0"/><package id="B"/></packages>`,
			[]string{"A@1.0"}, `packages without an id or version, skipped: "B"`},
		{"no id", `<packages><package version="2.0"/><package id="C" version="3.0"/></packages>`,
			[]string{"C@3.0"}, `packages without an id or version, skipped: ""`},
		{"clean", `<packages><package id="A" version="1.0"/></packages>`, []string{"A@1.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := Parse([]byte(tt.config), "/app/packages.config", "nuget-packages-config")
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/packages.config")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParsePartial(f, Parse, data)
}
