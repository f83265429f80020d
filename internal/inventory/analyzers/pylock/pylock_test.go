package pylock

import (
	"os"
	"reflect"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/pylock.toml")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/pylock.toml", "pylock")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"certifi@2025.1.31", "internal-tool@", "requests@2.32.3 -> [certifi urllib3]", "urllib3@2.3.0"}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"[[packages]]\nname = \"x\"\n", "lock-version = \"2.0\"\n", "lock-version = \"1.0\"\n[[packages]]\nversion = \"1\"\n", "lock-version ="} {
		if _, err := Parse([]byte(bad), "/pylock.toml", "pylock"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for p, want := range map[string]bool{"app/pylock.toml": true, "app/pylock.dev.toml": true, "app/pylock.a.b.toml": false, "app/pylock..toml": false, "app/mylock.toml": false} {
		if isLock(p) != want {
			t.Errorf("isLock(%q) = %v", p, !want)
		}
	}
}

// TestParseLeavesOutTheProject: the directory "." is the project the
// file locks; other directories and VCS entries are packages, reported
// without a version when they have none.
func TestParseLeavesOutTheProject(t *testing.T) {
	tests := []struct {
		name, lock string
		want       []string
	}{
		{"editable project", "lock-version = \"1.0\"\npackages = [\n  { name = \"site\", directory = { path = \".\", editable = true } },\n  { name = \"attrs\", version = \"25.1.0\" },\n]\n", []string{"attrs@25.1.0"}},
		{"project written ./", "lock-version = \"1.0\"\n[[packages]]\nname = \"site\"\ndirectory = { path = \"./\" }\n", []string{}},
		{"sibling directory", "lock-version = \"1.0\"\n[[packages]]\nname = \"lib\"\ndirectory = { path = \"../lib\" }\n", []string{"lib@"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := Parse([]byte(tt.lock), "/app/pylock.toml", "pylock")
			if err != nil {
				t.Fatal(err)
			}
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/pylock.toml")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
