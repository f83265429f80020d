package bun

import (
	"context"
	"os"
	"reflect"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/bun.lock")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/bun.lock", "bun-lock")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"@isaacs/string-locale-compare@1.1.0",
		"debug@2.6.9 -> [ms]",
		"gitdep@ -> [ms]",
		"minimist@1.2.8 dev",
		"ms@2.0.0",
		"ms@2.1.3",
	}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{`{"packages": {}}`, `{"lockfileVersion": 1, "packages": {"x": "y"}}`, `{"lockfileVersion": 1, "packages": {"x": ["noat"]}}`, `{`} {
		if _, err := Parse([]byte(bad), "/bun.lock", "bun-lock"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestAnalyzeNamesInstallDir(t *testing.T) {
	data, err := os.ReadFile("testdata/app/bun.lock")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{"srv/bun.lock": {Data: data}, "srv/node_modules/x/bun.lock": {Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sets) != 1 || res.Sets[0].InstalledUnder != "srv/node_modules" {
		t.Errorf("sets %+v", res.Sets)
	}
}

func TestStripJSONC(t *testing.T) {
	in := `{"a": [1, 2,], // comment, "b"
	/* block, */ "s": "x,]\" // not a comment", }`
	want := `{"a": [1, 2], 
	 "s": "x,]\" // not a comment" }`
	if got := string(stripJSONC([]byte(in))); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if parentKey("a/@s/b") != "a" || parentKey("@s/a/b") != "@s/a" || parentKey("a") != "" {
		t.Error("parentKey")
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/bun.lock")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
