package apk

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/inventory"
)

func TestParseInstalled(t *testing.T) {
	data, err := os.ReadFile("testdata/installed")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, warns := ParseInstalled(data, "/lib/apk/db/installed")
	type row struct{ name, version, src, arch, license, deps string }
	var got []row
	for _, p := range pkgs {
		got = append(got, row{p.Name, p.Version, p.SourceName, p.Arch, strings.Join(p.Licenses, ","), strings.Join(p.DependsOn, ",")})
		if p.SourceVersion != p.Version || p.Ecosystem != inventory.APK || p.Locations[0] != "/lib/apk/db/installed" {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	want := []row{
		{"musl", "1.2.4_git20230717-r4", "musl", "x86_64", "MIT", ""},
		{"libcrypto3", "3.1.4-r5", "openssl", "x86_64", "Apache-2.0", "musl"},
		{"busybox", "1.36.1-r15", "busybox", "x86_64", "GPL-2.0-only", "libcrypto3,musl"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], "line 36") || !strings.Contains(warns[1], "not K:value") {
		t.Errorf("warnings %q", warns)
	}
}

func TestAnalyze(t *testing.T) {
	a := Analyzer{}
	for p, want := range map[string]bool{
		"lib/apk/db/installed": true, "usr/lib/apk/db/installed": true,
		"lib/apk/db/installed.bak": false, "opt/lib/apk/db/installed": false,
	} {
		if a.Required(p, nil) != want {
			t.Errorf("Required(%q) = %v", p, !want)
		}
	}
	tests := []struct {
		name    string
		files   fstest.MapFS
		origins []string
	}{
		{"alpine", fstest.MapFS{"lib/apk/db/installed": {Data: []byte("P:a\nV:1\n")}}, []string{"lib/apk/db/installed"}},
		// Wolfi since 2025: /lib is a symlink to usr/lib, so the layer
		// holds the database under usr/lib.
		{"usr-merged", fstest.MapFS{"usr/lib/apk/db/installed": {Data: []byte("P:a\nV:1\n")}}, []string{"usr/lib/apk/db/installed"}},
	}
	for _, tt := range tests {
		res, err := a.Analyze(context.Background(), tt.files)
		if err != nil || len(res.Sets) != len(tt.origins) {
			t.Fatalf("%s: %+v %v", tt.name, res, err)
		}
		for i, set := range res.Sets {
			if set.Origin != tt.origins[i] || set.Packages[0].Name != "a" || set.Packages[0].Locations[0] != "/"+tt.origins[i] {
				t.Errorf("%s: set %+v", tt.name, set)
			}
		}
	}
}

func FuzzParseInstalled(f *testing.F) {
	seed, _ := os.ReadFile("testdata/installed")
	f.Add(seed)
	f.Add([]byte("P:a\nV:1\nD:b>=2 so:x=1 !c\np:cmd:a\n\nP:b\nV:2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, _ := ParseInstalled(data, "/x")
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}
