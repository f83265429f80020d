package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	lodash := newPkg("npm", "lodash", "4.17.15")
	xnet := newPkg("Go", "golang.org/x/net", "v0.7.0")
	tests := []struct {
		name                      string
		berth, osvs               []finding
		onlyOSV, onlyBerth, split int
	}{
		{"same flaw by different ids", []finding{newFinding(lodash, []string{"CVE-2020-8203"}, []string{"GHSA-p6mc-m468-83gw"})},
			[]finding{newFinding(lodash, []string{"GHSA-p6mc-m468-83gw"})}, 0, 0, 0},
		{"Go versions with and without v are one package", []finding{newFinding(xnet, []string{"GO-2023-1571"})},
			[]finding{newFinding(newPkg("Go", "golang.org/x/net", "0.7.0"), []string{"GO-2023-1571"})}, 0, 0, 0},
		{"PyPI names in any spelling are one package", []finding{newFinding(newPkg("PyPI", "jw-util", "1.0"), []string{"PYSEC-2020-341"})},
			[]finding{newFinding(newPkg("PyPI", "jw.util", "1.0"), []string{"PYSEC-2020-341"})}, 0, 0, 0},
		{"Ubuntu's LTS suffix ignored", []finding{newFinding(newPkg("Ubuntu:22.04", "openssl", "3.0.1"), []string{"CVE-1"})},
			[]finding{newFinding(newPkg("Ubuntu:22.04:LTS", "openssl", "3.0.1"), []string{"CVE-1"})}, 0, 0, 0},
		{"releases kept apart", []finding{newFinding(newPkg("Debian:11", "openssl", "3.0.1"), []string{"CVE-1"})},
			[]finding{newFinding(newPkg("Debian:12", "openssl", "3.0.1"), []string{"CVE-1"})}, 1, 1, 0},
		{"one side only", []finding{newFinding(lodash, []string{"CVE-1"})},
			[]finding{newFinding(lodash, []string{"CVE-2"})}, 1, 1, 0},
		{"same id, other version", []finding{newFinding(lodash, []string{"CVE-1"})},
			[]finding{newFinding(newPkg("npm", "lodash", "4.17.16"), []string{"CVE-1"})}, 1, 1, 0},
		{"osv-scanner merged what berth split", []finding{newFinding(lodash, []string{"CVE-1"}), newFinding(lodash, []string{"GHSA-2"})},
			[]finding{newFinding(lodash, []string{"CVE-1", "GHSA-2"})}, 0, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := compare(tc.berth, tc.osvs)
			if len(c.onlyOSV) != tc.onlyOSV || len(c.onlyBerth) != tc.onlyBerth || len(c.split) != tc.split {
				t.Errorf("only osv-scanner %d, only berth %d, split %d; want %d, %d, %d",
					len(c.onlyOSV), len(c.onlyBerth), len(c.split), tc.onlyOSV, tc.onlyBerth, tc.split)
			}
		})
	}
}

// TestReadBoth reads a berth report and osv-scanner output of one package
// (the shapes both tools write, cut down to what is read) and finds them
// equal but for the finding only berth has.
func TestReadBoth(t *testing.T) {
	b, err := readBerth(filepath.Join("testdata", "berth.json"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := readOSVScanner(filepath.Join("testdata", "osv-scanner.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	write(&out, compare(b, o))
	for _, want := range []string{"npm     1                 0           1", "only berth (1):\n  npm lodash@4.17.15  NSWG-ECO-516\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReadRejectsOtherDocuments(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, content string
	}{{"empty.json", ""}, {"other.json", `{"bomFormat":"CycloneDX"}`}, {"broken.json", `{"findings":[`}} {
		p := write(tc.name, tc.content)
		if _, err := readBerth(p); err == nil {
			t.Errorf("readBerth(%s): no error", tc.name)
		}
		if _, err := readOSVScanner(p); err == nil {
			t.Errorf("readOSVScanner(%s): no error", tc.name)
		}
	}
	if _, err := readBerth(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("readBerth(missing): no error")
	}
}

func TestNormalizePyPI(t *testing.T) {
	for in, want := range map[string]string{"jw.util": "jw-util", "Zope.Interface": "zope-interface", "a__b": "a-b", "requests": "requests"} {
		if got := normalizePyPI(in); got != want {
			t.Errorf("normalizePyPI(%q) = %q, want %q", in, got, want)
		}
	}
	if got := newFinding(newPkg("npm", "x", "1"), []string{"B", "A"}, []string{"A"}).ids; !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("ids %v, want sorted and unique", got)
	}
}
