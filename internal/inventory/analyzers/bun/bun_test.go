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
		"lib@ local",
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

// localCases are bun.lock files with workspace members and local
// folders, written here in the shape Bun writes.
var localCases = []struct {
	name, lock string
	want       []string // analyzertest.Summary
}{
	{"workspace members", `{
  "lockfileVersion": 1,
  "workspaces": {
    "": {"name": "shop"},
    "apps/web": {"name": "@shop/web", "version": "0.4.0", "dependencies": {"@shop/util": "workspace:*", "ms": "2.1.3"}},
    "libs/util": {"name": "@shop/util", "version": "1.1.0"},
    "libs/unversioned": {"name": "unversioned"},
  },
  "packages": {
    "@shop/web": ["@shop/web@workspace:apps/web"],
    "@shop/util": ["@shop/util@workspace:libs/util"],
    "unversioned": ["unversioned@workspace:libs/unversioned"],
    "ms": ["ms@2.1.3", "", {}, "sha512-AAAA"],
  }
}`, []string{"@shop/util@1.1.0 local", "@shop/web@0.4.0 local", "ms@2.1.3", "unversioned@ local"}},
	{"file: and link: folders, a file: tarball", `{
  "lockfileVersion": 1,
  "workspaces": {
    "": {"name": "shop", "dependencies": {"helpers": "file:../helpers", "packed": "file:vendor/packed-1.0.0.tgz", "linked": "link:linked"}, "devDependencies": {"ms": "2.1.3"}},
  },
  "packages": {
    "helpers": ["helpers@file:../helpers", {"dependencies": {"ms": "2.1.3"}}],
    "packed": ["packed@file:vendor/packed-1.0.0.tgz", {}],
    "linked": ["linked@link:linked", {}],
    "ms": ["ms@2.1.3", "", {}, "sha512-AAAA"],
  }
}`, []string{"helpers@ local -> [ms]", "linked@ local", "ms@2.1.3", "packed@"}},
}

// TestLocal: workspace members and local folders are listed as local,
// a member with the version its workspaces entry gives it; a tarball
// from a file: path is not local, and the project itself (not among the
// packages) is not listed.
func TestLocal(t *testing.T) {
	for _, tt := range localCases {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := Parse([]byte(tt.lock), "/app/bun.lock", "bun-lock")
			if err != nil {
				t.Fatal(err)
			}
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
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
	seeds := [][]byte{data}
	for _, c := range localCases {
		seeds = append(seeds, []byte(c.lock))
	}
	analyzertest.FuzzParse(f, Parse, seeds...)
}
