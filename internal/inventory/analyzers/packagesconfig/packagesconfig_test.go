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

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/packages.config")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
