// Package version orders the version strings of each package ecosystem.
//
// Every ecosystem has one Scheme (dpkg, apk, rpm, semver, Go, PEP 440, Maven,
// RubyGems, NuGet, Composer), and one table maps OSV ecosystem strings to
// them. A Scheme parses a string once into a Version; Versions of the same
// Scheme compare cheaply, so callers parse each distinct string once (see
// Cache) and compare many times.
package version

import (
	"errors"
	"strings"
)

// ErrInvalid is wrapped by every Parse error: the string is not a version of
// the scheme.
var ErrInvalid = errors.New("invalid version")

// Version is one parsed version. Compare orders it against another Version
// parsed by the same Scheme: negative when v sorts before other, zero when
// they are equal, positive when v sorts after. Comparing Versions of two
// different Schemes is a programming error and panics.
type Version interface {
	Compare(other Version) int
	String() string
}

// Scheme is the version syntax and ordering of one ecosystem.
type Scheme interface {
	// Name is a short stable identifier, e.g. "dpkg", "pep440".
	Name() string
	// Parse returns an error wrapping ErrInvalid when s is not a version of
	// this scheme.
	Parse(s string) (Version, error)
}

// The schemes. They hold no state, so one value of each serves everyone.
var (
	Dpkg     Scheme = dpkgScheme{}
	APK      Scheme = apkScheme{}
	RPM      Scheme = rpmScheme{}
	SemVer   Scheme = semverScheme{name: "semver"}
	NPM      Scheme = semverScheme{name: "npm", loose: true}
	Go       Scheme = semverScheme{name: "go", golang: true}
	Cargo    Scheme = semverScheme{name: "cargo"}
	PEP440   Scheme = pep440Scheme{}
	Maven    Scheme = mavenScheme{}
	Gem      Scheme = gemScheme{}
	NuGet    Scheme = nugetScheme{}
	Composer Scheme = composerScheme{}
)

// ecosystems maps the OSV ecosystem name (the part before any ":" suffix)
// to its scheme. Distros and the OSV ecosystems that reuse another's
// ordering appear once each here; adding an ecosystem is one line.
var ecosystems = map[string]Scheme{
	"Debian":         Dpkg,
	"Ubuntu":         Dpkg,
	"Alpine":         APK,
	"Wolfi":          APK,
	"Chainguard":     APK,
	"Red Hat":        RPM,
	"Rocky Linux":    RPM,
	"AlmaLinux":      RPM,
	"SUSE":           RPM,
	"openSUSE":       RPM,
	"Mageia":         RPM,
	"Photon OS":      RPM,
	"openEuler":      RPM,
	"npm":            NPM,
	"Go":             Go,
	"crates.io":      Cargo,
	"Hex":            SemVer,
	"Pub":            SemVer,
	"SwiftURL":       SemVer,
	"PyPI":           PEP440,
	"Maven":          Maven,
	"RubyGems":       Gem,
	"NuGet":          NuGet,
	"Packagist":      Composer,
	"Bitnami":        SemVer,
	"GitHub Actions": SemVer,
}

// ForEcosystem returns the scheme of an OSV ecosystem string such as
// "Debian:12", "Alpine:v3.19", "PyPI" or "Maven:https://maven.google.com".
func ForEcosystem(ecosystem string) (Scheme, bool) {
	base, _, _ := strings.Cut(ecosystem, ":")
	s, ok := ecosystems[base]
	return s, ok
}

// ByName returns the scheme whose Name is name.
func ByName(name string) (Scheme, bool) {
	for _, s := range []Scheme{Dpkg, APK, RPM, SemVer, NPM, Go, Cargo, PEP440, Maven, Gem, NuGet, Composer} {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

// sign reduces a comparison result to -1, 0 or 1; several libraries return
// differences rather than signs.
func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
