package conan

import (
	"fmt"
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
		// Conan 1 before 1.22 writes package references ("pref", with
		// ":package_id"); node 0 is the project itself.
		{"testdata/v0.2/conan.lock", []string{"libcurl@7.78.0", "openssl@1.1.1k"}},
		// Lock 0.1 names nodes by UUID, marks the consumer by its
		// conanfile path and writes requirements as objects.
		{"testdata/v0.1/conan.lock", []string{"cmake@3.20.0 dev", "libcurl@7.78.0"}},
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

// TestParseSkipsBadReferences: one reference that is not name/version is
// named in the error and the others are still read.
func TestParseSkipsBadReferences(t *testing.T) {
	tests := []struct {
		name, lock string
		want       []string
		wantErr    string
	}{
		{"nameless among good", `{"version": "0.5", "requires": ["zlib/1.2.13#abc%1", "1.2.3#abc%1"], "build_requires": ["cmake/3.27.1"]}`,
			[]string{"cmake@3.27.1 dev", "zlib@1.2.13"}, `reference "1.2.3" is not name/version`},
		{"graph node without version", `{"graph_lock": {"nodes": {"1": {"ref": "zlib/1.2.11"}, "2": {"ref": "bzip2"}}}}`,
			[]string{"zlib@1.2.11"}, `reference "bzip2" is not name/version`},
		{"all good", `{"version": "0.5", "requires": ["zlib/1.2.13"]}`, []string{"zlib@1.2.13"}, ""},
		{"too many parts", `{"graph_lock": {"nodes": {"0": {"path": "conanfile.txt"}, "1": {"ref": "wrong/ref/format"}, "2": {"ref": "zlib/1.2.11"}}}, "version": "0.4"}`,
			[]string{"zlib@1.2.11"}, `reference "wrong/ref/format" is not name/version`},
		{"0.4 editable node with a ref and a path", `{"graph_lock": {"nodes": {"0": {"path": "conanfile.txt", "requires": ["1"]}, "1": {"ref": "pkgc/0.1.1@user/testing", "path": "conanfile.txt"}}}, "version": "0.4"}`,
			[]string{"pkgc@0.1.1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := Parse([]byte(tt.lock), "/app/conan.lock", "conan-lock")
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if gotErr := fmt.Sprint(err); (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && gotErr != tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
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
	analyzertest.FuzzParsePartial(f, Parse, seeds...)
}
