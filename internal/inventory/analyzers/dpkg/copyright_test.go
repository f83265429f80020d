package dpkg

import (
	"context"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/inventory"
)

func TestParseCopyright(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"machine-readable", `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bash

Files: *
Copyright: 1987-2022 Free Software Foundation, Inc.
License: GPL-3+

Files: lib/readline/*
License: GPL-3+

Files: debian/*
License: GPL-2+ or Artistic
Comment: License: not-a-field, indented

License: GPL-3+
 This program is free software; ...
License: gpl-3+
`, []string{"GPL-3+", "GPL-2+ or Artistic"}},
		{"free text with common-licenses", `This is the Debian prepackaged version of the GNU C Library.
On Debian systems, the complete text of the GNU Lesser General Public
License can be found in /usr/share/common-licenses/LGPL-2.1.  See also
/usr/share/common-licenses/GPL-2 and again /usr/share/common-licenses/GPL-2.
`, []string{"LGPL-2.1", "GPL-2"}},
		{"no licenses named", "Copyright (c) someone\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCopyright([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAnalyzeCopyrights(t *testing.T) {
	a := Analyzer{}
	for p, want := range map[string]bool{
		"usr/share/doc/bash/copyright":        true,
		"usr/share/doc/bash/copyright.gz":     false,
		"usr/share/doc/copyright":             false,
		"usr/share/doc/a/b/copyright":         false,
		"usr/local/share/doc/bash/copyright":  false,
		"usr/share/doc/libc6/changelog.gz":    false,
		"usr/share/doc/libssl3/copyright.old": false,
	} {
		if got := a.Required(p, nil); got != want {
			t.Errorf("Required(%q) = %v", p, got)
		}
	}
	res, err := a.Analyze(context.Background(), fstest.MapFS{
		"usr/share/doc/zlib1g/copyright": {Data: []byte("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Zlib\n")},
		"usr/share/doc/empty/copyright":  {Data: []byte("nothing here\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.LicenseFile{{Origin: "usr/share/doc/zlib1g/copyright", Ecosystem: inventory.Deb, Package: "zlib1g", Licenses: []string{"Zlib"}}}
	if !reflect.DeepEqual(res.Licenses, want) || len(res.Sets) != 0 {
		t.Errorf("result %+v", res)
	}
}

func FuzzParseCopyright(f *testing.F) {
	f.Add([]byte("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: GPL-2+\n"))
	f.Add([]byte("see /usr/share/common-licenses/GPL-2."))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, l := range ParseCopyright(data) {
			if l == "" {
				t.Fatal("empty license")
			}
		}
		if name, ok := copyrightPackage(string(data)); ok && (name == "" || len(name) >= len(data)) {
			t.Fatalf("copyrightPackage(%q) = %q", data, name)
		}
	})
}

// A package whose doc directory is a symlink to another package's gets
// that package's licenses (libpython3.11-stdlib → libpython3.11-minimal).
func TestAnalyzeLinkedDocDirectory(t *testing.T) {
	mr := "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nLicense: PSF-2.0\n"
	res, err := Analyzer{}.Analyze(context.Background(), fstest.MapFS{
		"var/lib/dpkg/status":             {Data: []byte("Package: minimal\nVersion: 1\n\nPackage: stdlib\nVersion: 1\n\nPackage: nodoc\nVersion: 1\n")},
		"usr/share/doc/minimal/copyright": {Data: []byte(mr)},
		"usr/share/doc/stdlib":            {Data: []byte("minimal"), Mode: fs.ModeSymlink},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, lf := range res.Licenses {
		got[lf.Package] = lf.Origin + "=" + strings.Join(lf.Licenses, ",")
	}
	want := map[string]string{
		"minimal": "usr/share/doc/minimal/copyright=PSF-2.0",
		"stdlib":  "usr/share/doc/stdlib/copyright=PSF-2.0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("licenses %v, want %v", got, want)
	}
}
