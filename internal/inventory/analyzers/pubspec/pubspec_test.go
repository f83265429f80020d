package pubspec

import (
	"os"
	"reflect"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/pubspec.lock")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/pubspec.lock", "pubspec-lock")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"async@2.11.0", "flutter@0.0.0 local", "http@0.13.6", "lints@2.1.1 dev", "my_plugin@1.2.0"}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"packages: [", "other: 1\n", "packages:\n  x:\n    source: hosted\n"} {
		if _, err := Parse([]byte(bad), "/pubspec.lock", "pubspec-lock"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/pubspec.lock")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
