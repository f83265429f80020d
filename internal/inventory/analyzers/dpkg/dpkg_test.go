package dpkg

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/inventory"
)

func TestParseStatus(t *testing.T) {
	data, err := os.ReadFile("testdata/status")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, warns := ParseStatus(data, "/var/lib/dpkg/status")
	type row struct{ name, version, src, srcVersion, arch, deps string }
	want := []row{
		{"bash", "5.2.15-2+b13", "bash", "5.2.15-2", "amd64", "libc6"},
		{"libc6", "2.36-9+deb12u14", "glibc", "2.36-9+deb12u14", "amd64", "libgcc-s1"},
		{"libgcc-s1", "12.2.0-14+deb12u1", "gcc-12", "12.2.0-14+deb12u1", "amd64", "libc6"},
		{"zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1", "amd64", "libc6"},
	}
	var got []row
	for _, p := range pkgs {
		got = append(got, row{p.Name, p.Version, p.SourceName, p.SourceVersion, p.Arch, strings.Join(p.DependsOn, ",")})
		if p.Ecosystem != inventory.Deb || p.Analyzer != "dpkg" || !reflect.DeepEqual(p.Locations, []string{"/var/lib/dpkg/status"}) {
			t.Errorf("%s: ecosystem %q analyzer %q locations %v", p.Name, p.Ecosystem, p.Analyzer, p.Locations)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("packages:\n got %v\nwant %v", got, want)
	}
	if len(warns) != 2 {
		t.Fatalf("want 2 warnings (no-version, garbage), got %q", warns)
	}
	for i, frag := range []string{"no-version", "is not a field"} {
		if !strings.Contains(warns[i], frag) || !strings.HasPrefix(warns[i], "/var/lib/dpkg/status: stanza at line ") {
			t.Errorf("warning %d = %q, want it to name the file, line and %q", i, warns[i], frag)
		}
	}
}

func TestParseStatusMalformed(t *testing.T) {
	tests := []struct {
		name, in, warn string
	}{
		{"continuation first", " leading continuation\nPackage: a\nVersion: 1\n", "continuation line"},
		{"no package", "Version: 1\nStatus: install ok installed\n", "no Package field"},
		{"bad status", "Package: a\nStatus: installed\nVersion: 1\n", "invalid Status"},
		{"bad source", "Package: a\nVersion: 1\nSource: b (2\n", "invalid Source"},
		{"repeated field", "Package: a\nVersion: 1\nVersion: 2\n", "repeated"},
		{"bad name", "Package: a b\nVersion: 1\n", "invalid package name"},
		{"space in version", "Package: a\nVersion: 1 2\n", "invalid Version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in + "\nPackage: good\nVersion: 1.0\n"
			pkgs, warns := ParseStatus([]byte(in), "/s")
			if len(pkgs) != 1 || pkgs[0].Name != "good" {
				t.Errorf("the good stanza was lost: %+v", pkgs)
			}
			if len(warns) != 1 || !strings.Contains(warns[0], tt.warn) {
				t.Errorf("warnings %q, want one containing %q", warns, tt.warn)
			}
		})
	}
}

func TestAnalyzeStatusAndDistroless(t *testing.T) {
	a := Analyzer{}
	files := fstest.MapFS{
		"var/lib/dpkg/status":                   {Data: []byte("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n")},
		"var/lib/dpkg/status.d/base":            {Data: []byte("Package: base-files\nVersion: 12.4\nArchitecture: amd64\n")},
		"var/lib/dpkg/status.d/libssl3":         {Data: []byte("Package: libssl3\nSource: openssl\nVersion: 3.0.20-1\nArchitecture: amd64\n")},
		"var/lib/dpkg/status.d/libssl3.md5sums": {Data: []byte("0123 usr/lib/x\n")},
	}
	for name := range files {
		if !a.Required(name, nil) && !strings.HasSuffix(name, ".md5sums") {
			t.Errorf("Required(%q) = false", name)
		}
	}
	if a.Required("var/lib/dpkg/status.d/libssl3.md5sums", nil) || a.Required("var/lib/dpkg/status-old", nil) {
		t.Error("Required accepts files it does not read")
	}
	res, err := a.Analyze(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	var origins []string
	for _, s := range res.Sets {
		origins = append(origins, s.Origin+"="+s.Packages[0].Name+"/"+s.Packages[0].SourceName)
	}
	want := []string{"var/lib/dpkg/status=a/a", "var/lib/dpkg/status.d/base=base-files/base-files", "var/lib/dpkg/status.d/libssl3=libssl3/openssl"}
	if !reflect.DeepEqual(origins, want) {
		t.Errorf("sets %v, want %v", origins, want)
	}
}

func FuzzParseStatus(f *testing.F) {
	seed, err := os.ReadFile("testdata/status")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("Package: a\nVersion: 1\nSource: b (1)\nDepends: c | d (>= 1), e:any\n\n\n"))
	f.Add([]byte(" \n\t\r\n:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, _ := ParseStatus(data, "/s")
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.SourceName == "" || p.SourceVersion == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}
