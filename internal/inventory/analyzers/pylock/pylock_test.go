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

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/pylock.toml")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
