package conan

import (
	"os"
	"reflect"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		// zlib is both required and a build requirement: not dev.
		{"testdata/v2/conan.lock", []string{"cmake@3.27.1 dev", "openssl@3.0.8", "zlib@1.2.13"}},
		{"testdata/v1/conan.lock", []string{"cmake@3.21.3 dev", "libpng@1.6.37", "zlib@1.2.11"}},
	}
	for _, tt := range tests {
		data, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		pkgs, err := Parse(data, "/app/conan.lock", "conan-lock")
		if err != nil {
			t.Fatal(err)
		}
		if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %q\nwant %q", tt.file, got, tt.want)
		}
	}
	for _, bad := range []string{`{}`, `{"version": "0.5", "requires": ["noversion"]}`, `[`} {
		if _, err := Parse([]byte(bad), "/conan.lock", "conan-lock"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	var seeds [][]byte
	for _, p := range []string{"testdata/v1/conan.lock", "testdata/v2/conan.lock"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	analyzertest.FuzzParse(f, Parse, seeds...)
}
