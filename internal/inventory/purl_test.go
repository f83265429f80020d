package inventory

import "testing"

func TestPURL(t *testing.T) {
	debian := &Distro{ID: "debian", VersionID: "12"}
	alpine := &Distro{ID: "alpine", VersionID: "3.19.1"}
	rhel := &Distro{ID: "rhel", VersionID: "9.4"}
	tests := []struct {
		name string
		pkg  Package
		d    *Distro
		want string
	}{
		{"deb with other source", Package{Ecosystem: Deb, Name: "libc6", Version: "2.36-9+deb12u14", SourceName: "glibc", SourceVersion: "2.36-9+deb12u14", Arch: "amd64"}, debian,
			"pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc"},
		{"deb binNMU", Package{Ecosystem: Deb, Name: "bash", Version: "5.2.15-2+b13", SourceName: "bash", SourceVersion: "5.2.15-2", Arch: "amd64"}, debian,
			"pkg:deb/debian/bash@5.2.15-2%2Bb13?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2"},
		{"deb own source, epoch", Package{Ecosystem: Deb, Name: "zlib1g", Version: "1:1.2.13.dfsg-1", SourceName: "zlib1g", SourceVersion: "1:1.2.13.dfsg-1", Arch: "amd64"}, debian,
			"pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"},
		{"deb without distro", Package{Ecosystem: Deb, Name: "tzdata", Version: "2026b-0+deb12u1", Arch: "all"}, nil,
			"pkg:deb/debian/tzdata@2026b-0%2Bdeb12u1?arch=all"},
		{"ubuntu", Package{Ecosystem: Deb, Name: "libc6", Version: "2.39-0ubuntu8", SourceName: "glibc", SourceVersion: "2.39-0ubuntu8", Arch: "amd64"}, &Distro{ID: "ubuntu", VersionID: "24.04"},
			"pkg:deb/ubuntu/libc6@2.39-0ubuntu8?arch=amd64&distro=ubuntu-24.04&upstream=glibc"},
		{"apk", Package{Ecosystem: APK, Name: "libcrypto3", Version: "3.1.4-r5", SourceName: "openssl", SourceVersion: "3.1.4-r5", Arch: "x86_64"}, alpine,
			"pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"},
		{"rpm with epoch", Package{Ecosystem: RPM, Name: "openssl-libs", Version: "1:3.0.7-27.el9", SourceName: "openssl", SourceVersion: "1:3.0.7-27.el9", Arch: "x86_64"}, rhel,
			"pkg:rpm/rhel/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1&upstream=openssl"},
		{"rpm epoch 0", Package{Ecosystem: RPM, Name: "bash", Version: "0:5.1.8-9.el9", SourceName: "bash", SourceVersion: "0:5.1.8-9.el9", Arch: "x86_64"}, rhel,
			"pkg:rpm/rhel/bash@5.1.8-9.el9?arch=x86_64&distro=rhel-9.4"},
		{"golang module", Package{Ecosystem: Go, Name: "golang.org/x/net", Version: "v0.0.0-20210226172049-e18ecbb05110"}, debian,
			"pkg:golang/golang.org/x/net@v0.0.0-20210226172049-e18ecbb05110"},
		{"golang mixed case", Package{Ecosystem: Go, Name: "github.com/Azure/azure-sdk-for-go", Version: "v68.0.0+incompatible"}, nil,
			"pkg:golang/github.com/Azure/azure-sdk-for-go@v68.0.0%2Bincompatible"},
		{"golang stdlib", Package{Ecosystem: Go, Name: "stdlib", Version: "go1.26.8"}, nil, "pkg:golang/stdlib@1.26.8"},
		{"golang stdlib before 1.21", Package{Ecosystem: Go, Name: "stdlib", Version: "go1.20"}, nil, "pkg:golang/stdlib@1.20.0"},
		{"golang stdlib release candidate", Package{Ecosystem: Go, Name: "stdlib", Version: "go1.21rc2"}, nil, "pkg:golang/stdlib@1.21.0-rc.2"},
		{"golang module named like a toolchain", Package{Ecosystem: Go, Name: "example.com/stdlib", Version: "go1.2"}, nil, "pkg:golang/example.com/stdlib@go1.2"},
		{"npm", Package{Ecosystem: NPM, Name: "lodash", Version: "4.17.15"}, debian, "pkg:npm/lodash@4.17.15"},
		{"npm scoped", Package{Ecosystem: NPM, Name: "@angular/core", Version: "17.0.0"}, nil, "pkg:npm/%40angular/core@17.0.0"},
		{"pypi normalised", Package{Ecosystem: PyPI, Name: "Charset_Normalizer", Version: "3.0.1"}, nil, "pkg:pypi/charset-normalizer@3.0.1"},
		{"pypi dots", Package{Ecosystem: PyPI, Name: "zope.interface", Version: "6.0"}, nil, "pkg:pypi/zope-interface@6.0"},
		{"maven", Package{Ecosystem: Maven, Name: "org.apache.commons:commons-lang3", Version: "3.12.0"}, nil, "pkg:maven/org.apache.commons/commons-lang3@3.12.0"},
		{"gem", Package{Ecosystem: Gem, Name: "rails", Version: "7.1.2"}, nil, "pkg:gem/rails@7.1.2"},
		{"cargo", Package{Ecosystem: Cargo, Name: "serde", Version: "1.0.193"}, nil, "pkg:cargo/serde@1.0.193"},
		{"composer", Package{Ecosystem: Composer, Name: "Laravel/Framework", Version: "v10.0.0"}, nil, "pkg:composer/laravel/framework@v10.0.0"},
		{"nuget", Package{Ecosystem: NuGet, Name: "Newtonsoft.Json", Version: "13.0.3"}, nil, "pkg:nuget/Newtonsoft.Json@13.0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PURL(tt.pkg, tt.d); got != tt.want {
				t.Errorf("PURL = %s\n           want %s", got, tt.want)
			}
		})
	}
}
