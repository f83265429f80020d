package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/testpeers"
)

func TestRequirable(t *testing.T) {
	tests := []struct {
		path, version string
		want          bool
	}{
		{"golang.org/x/net", "v0.7.0", true},
		{"golang.org/x/net", "v0.0.0-20210226172049-e18ecbb05110", true},
		{"golang.org/x/net", "0.7.0", false},
		{"golang.org/x/net", "v0.7", false},
		{"github.com/docker/docker", "v20.10.0", false},
		{"github.com/docker/docker", "v20.10.0+incompatible", true},
		{"github.com/docker/docker", "v1.4.0+incompatible", false},
		{"github.com/x/y/v2", "v2.1.0", true},
		{"github.com/x/y/v2", "v3.0.0", false},
		{"github.com/x/y/v2", "v2.1.0+incompatible", false},
		{"gopkg.in/yaml.v2", "v2.2.8", true},
		{"gopkg.in/yaml.v2", "v3.0.0", false},
		{"gopkg.in/yaml.v1", "v0.0.0-20140924161607-9f9df34309c0", true},
		{"github.com/x/y", "v1.2.3-rc.1", true},
		{"github.com/x/y", "v01.2.3", false},
	}
	for _, tc := range tests {
		if got := requirable(tc.path, tc.version); got != tc.want {
			t.Errorf("requirable(%s, %s) = %v, want %v", tc.path, tc.version, got, tc.want)
		}
	}
}

func TestGoVersion(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"golang.org/x/net", "0.7.0", "v0.7.0", true},
		{"golang.org/x/net", "v0.7.0", "v0.7.0", true},
		{"stdlib", "1.21.5", "go1.21.5", true},
		{"stdlib", "1.21.0", "go1.21.0", true},
		{"stdlib", "1.20.0", "go1.20", true},
		{"stdlib", "1.20.10", "go1.20.10", true},
		{"stdlib", "1.21.0-rc.2", "", false},
		{"toolchain", "1.21.5", "", false},
	}
	for _, tc := range tests {
		got, ok := goVersion(tc.name, tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("goVersion(%s, %s) = %q, %v; want %q, %v", tc.name, tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMentioned(t *testing.T) {
	aff := osv.Affected{
		Versions: []string{"1.0.1"},
		Ranges: []osv.Range{
			{Type: osv.RangeGit, Events: []osv.Event{{Introduced: "0"}, {Fixed: "abc123"}}},
			{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}, {Fixed: "1.2"}, {Introduced: "2.0"}, {LastAffected: "2.3"}, {Limit: "*"}}},
		},
	}
	got := mentioned(aff)
	slices.Sort(got)
	if want := []string{"1.0.1", "1.2", "2.0", "2.3"}; !slices.Equal(got, want) {
		t.Errorf("mentioned = %v, want %v", got, want)
	}
}

// TestSweepNPMFixture sweeps the npm records of the shared fixtures: every
// version they name is in the inventory and the SBOM, none in go.mod files.
func TestSweepNPMFixture(t *testing.T) {
	// Only npm: a folder holding just the npm feed.
	in := t.TempDir()
	if err := os.Mkdir(filepath.Join(in, "npm"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(testpeers.Shared(t, "vulndata", "osv", "npm", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "npm", "all.zip"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := run(in, out); err != nil {
		t.Fatal(err)
	}
	var inv inventory.Inventory
	raw, err := os.ReadFile(filepath.Join(out, "inventory.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &inv); err != nil {
		t.Fatal(err)
	}
	// GHSA-p6mc-m468-83gw: lodash [3.7.0, 4.17.19).
	var lodash []string
	for _, p := range inv.Packages {
		if p.Ecosystem != inventory.NPM || !slices.Equal(p.Locations, []string{location}) {
			t.Errorf("package %+v", p)
		}
		if p.Name == "lodash" {
			lodash = append(lodash, p.Version)
		}
	}
	for _, v := range []string{"3.7.0", "4.17.19"} {
		if !slices.Contains(lodash, v) {
			t.Errorf("lodash versions %v lack %s", lodash, v)
		}
	}
	cdx, err := os.ReadFile(filepath.Join(out, "sweep.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cdx), `"purl": "pkg:npm/lodash@4.17.19"`) {
		t.Error("the SBOM lacks pkg:npm/lodash@4.17.19")
	}
	if entries, err := os.ReadDir(filepath.Join(out, "gomod")); err == nil && len(entries) > 0 {
		t.Errorf("%d go.mod folders for npm records", len(entries))
	}
}

func TestSplitGoModules(t *testing.T) {
	inv := inventory.Inventory{Packages: []inventory.Package{
		{Ecosystem: inventory.Go, Name: "golang.org/x/net", Version: "v0.7.0"},
		{Ecosystem: inventory.Go, Name: "golang.org/x/net", Version: "v0.8.0"},
		{Ecosystem: inventory.Go, Name: "golang.org/x/text", Version: "v0.3.5"},
		{Ecosystem: inventory.Go, Name: "stdlib", Version: "go1.21.5"},
		{Ecosystem: inventory.Go, Name: "github.com/docker/docker", Version: "v20.10.0"},
		{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.15"},
	}}
	rest, lists := splitGoModules(inv)
	if len(rest.Packages) != 3 || len(lists) != 2 || len(lists[0]) != 2 || len(lists[1]) != 1 {
		t.Fatalf("rest %d packages, lists %v", len(rest.Packages), lists)
	}
	var b strings.Builder
	if err := writeGoMod(&b, lists[0]); err != nil {
		t.Fatal(err)
	}
	want := "module recordsweep.example/sweep\n\nrequire (\n\tgolang.org/x/net v0.7.0\n\tgolang.org/x/text v0.3.5\n)\n"
	if b.String() != want {
		t.Errorf("go.mod:\n%s\nwant:\n%s", b.String(), want)
	}
}
