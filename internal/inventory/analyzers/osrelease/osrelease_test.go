package osrelease

import (
	"context"
	"reflect"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/inventory"
)

func TestAnalyze(t *testing.T) {
	debian := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	alpine := "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n"
	tests := []struct {
		name  string
		files fstest.MapFS
		want  *inventory.Distro
		warns int
	}{
		{"debian os-release", fstest.MapFS{"usr/lib/os-release": {Data: []byte(debian)}},
			&inventory.Distro{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}, 0},
		{"etc wins over usr/lib", fstest.MapFS{"etc/os-release": {Data: []byte(alpine)}, "usr/lib/os-release": {Data: []byte(debian)}},
			&inventory.Distro{ID: "alpine", VersionID: "3.19.1", PrettyName: "Alpine Linux v3.19"}, 0},
		{"single quotes and comments", fstest.MapFS{"etc/os-release": {Data: []byte("# c\nID='rhel'\nVERSION_ID='9.4'\n")}},
			&inventory.Distro{ID: "rhel", VersionID: "9.4"}, 0},
		{"alpine-release", fstest.MapFS{"etc/alpine-release": {Data: []byte("3.19.1\n")}},
			&inventory.Distro{ID: "alpine", VersionID: "3.19.1"}, 0},
		{"debian_version release", fstest.MapFS{"etc/debian_version": {Data: []byte("12.15\n")}},
			&inventory.Distro{ID: "debian", VersionID: "12"}, 0},
		{"debian_version testing", fstest.MapFS{"etc/debian_version": {Data: []byte("trixie/sid\n")}},
			&inventory.Distro{ID: "debian", Codename: "trixie"}, 0},
		{"redhat-release", fstest.MapFS{"etc/redhat-release": {Data: []byte("CentOS Linux release 7.9.2009 (Core)\n")}},
			&inventory.Distro{ID: "centos", VersionID: "7.9.2009", PrettyName: "CentOS Linux release 7.9.2009 (Core)"}, 0},
		{"os-release without ID falls back", fstest.MapFS{"etc/os-release": {Data: []byte("NAME=x\n")}, "etc/debian_version": {Data: []byte("11.9")}},
			&inventory.Distro{ID: "debian", VersionID: "11"}, 1},
		{"garbage fallback", fstest.MapFS{"etc/redhat-release": {Data: []byte("hello")}}, nil, 1},
		{"nothing", fstest.MapFS{}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Analyzer{}.Analyze(context.Background(), tt.files)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Distro, tt.want) {
				t.Errorf("distro %+v, want %+v", res.Distro, tt.want)
			}
			if len(res.Warns) != tt.warns {
				t.Errorf("warnings %q, want %d", res.Warns, tt.warns)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	files := fstest.MapFS{"etc/os-release": {Data: []byte("ID=x")}, "etc/os-release.bak": {Data: []byte("ID=x")}}
	a := Analyzer{}
	for name, want := range map[string]bool{"etc/os-release": true, "etc/os-release.bak": false} {
		info, err := files.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Required(name, info); got != want {
			t.Errorf("Required(%q) = %v", name, got)
		}
	}
}
