package match

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match/version"
)

// target is what one inventory package is looked up and compared as.
type target struct {
	// ecosystems are the OSV ecosystem strings that name this package's
	// records; the first is the canonical one.
	ecosystems []string
	name       string // the name records use (source package for distros)
	version    string // the version compared (source version for distros)
	scheme     version.Scheme
	foldCase   bool // names compare case-insensitively (NuGet, Packagist)
	distro     bool // an OS ecosystem, whose own severity ratings win
}

// memoKey identifies a target for Matcher's memo: everything matching it
// depends on (the scheme follows from the ecosystems).
func (t target) memoKey() string {
	// Sized up front: a re-match builds one per package of every report.
	n := len(t.name) + len(t.version) + 6
	for _, e := range t.ecosystems {
		n += len(e) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for _, e := range t.ecosystems {
		b.WriteString(e)
		b.WriteByte(',')
	}
	b.WriteByte(0)
	b.WriteString(t.name)
	b.WriteByte(0)
	b.WriteString(t.version)
	if t.foldCase {
		b.WriteString("\x00f")
	}
	if t.distro {
		b.WriteString("\x00d")
	}
	return b.String()
}

// sameName reports whether a record's package name names this target.
func (t target) sameName(recordName string) bool {
	if recordName == t.name {
		return true
	}
	if t.scheme == version.PEP440 {
		return normalizePyPI(recordName) == t.name
	}
	if t.foldCase {
		return strings.EqualFold(recordName, t.name)
	}
	return recordName == t.name
}

func (t target) hasEcosystem(eco string) bool {
	for _, e := range t.ecosystems {
		if e == eco {
			return true
		}
	}
	return false
}

// languageEcosystems maps language package ecosystems to OSV's; each is
// one line to add. The ecosystem lists are shared by every target and
// never modified.
var languageEcosystems = map[inventory.Ecosystem]struct {
	osv      []string
	foldCase bool
}{
	inventory.NPM:      {osv: []string{"npm"}},
	inventory.Go:       {osv: []string{"Go"}},
	inventory.PyPI:     {osv: []string{"PyPI"}},
	inventory.Maven:    {osv: []string{"Maven"}},
	inventory.Gem:      {osv: []string{"RubyGems"}},
	inventory.Cargo:    {osv: []string{"crates.io"}},
	inventory.Composer: {osv: []string{"Packagist"}, foldCase: true},
	inventory.NuGet:    {osv: []string{"NuGet"}, foldCase: true},
	inventory.Hex:      {osv: []string{"Hex"}},
	inventory.Pub:      {osv: []string{"Pub"}},
}

// debianReleases maps codenames to release numbers for images whose
// os-release has no VERSION_ID (testing, sid).
var debianReleases = map[string]string{
	"squeeze": "6", "wheezy": "7", "jessie": "8", "stretch": "9", "buster": "10",
	"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
}

// binNMU matches the "+bN" suffix of a binary-only rebuild; the source
// package, which the distro trackers version, never carries it.
var binNMU = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\+b[0-9]+$`) })

// unmatchable says why packages of an ecosystem cannot be matched; the
// matcher reports each reason once with the packages it concerns.
type unmatchable struct {
	eco    inventory.Ecosystem
	reason string
}

func (u unmatchable) Error() string { return string(u.eco) + " packages: " + u.reason }

// targetFor maps an inventory package (and the image's distro) to how its
// vulnerabilities are looked up. The error says why a package cannot be
// matched at all; the caller reports it rather than dropping it silently.
func targetFor(p *inventory.Package, d *inventory.Distro) (target, error) {
	tf := targeter{distro: d}
	return tf.target(p)
}

// targeter is targetFor for the packages of one inventory: the OSV
// ecosystems of its distro's packages are worked out once, not once a
// package (a re-match maps the packages of thousands of inventories).
type targeter struct {
	distro *inventory.Distro
	osEcos map[inventory.Ecosystem]distroEcosystems
}

type distroEcosystems struct {
	ecos []string // shared by the targets, never modified
	err  error
}

func (tf *targeter) target(p *inventory.Package) (target, error) {
	if p.Local {
		return target{}, unmatchable{p.Ecosystem, "the project's own or shipped with its SDK, not from the registry"}
	}
	if p.Ecosystem == inventory.RPM && p.Name == "gpg-pubkey" {
		// rpm keeps the keys it trusts as header entries; their
		// "version" is a key id, and no advisory is about them.
		return target{}, unmatchable{p.Ecosystem, "signing keys, not software"}
	}
	if le, ok := languageEcosystems[p.Ecosystem]; ok {
		s, _ := version.ForEcosystem(le.osv[0])
		t := target{ecosystems: le.osv, name: p.Name, version: p.Version, scheme: s, foldCase: le.foldCase}
		switch p.Ecosystem {
		case inventory.PyPI:
			t.name = normalizePyPI(p.Name)
		case inventory.Go:
			if p.Name == "stdlib" {
				// Binaries report the toolchain that built them ("go1.26.8");
				// the Go database writes stdlib ranges in semver.
				if v, ok := version.GoReleaseToSemver(p.Version); ok {
					t.version = v
				}
			}
		}
		return t, nil
	}
	name, ver := p.SourceName, p.SourceVersion
	if name == "" {
		name = p.Name
	}
	if ver == "" {
		ver = p.Version
	}
	de, ok := tf.osEcos[p.Ecosystem]
	if !ok {
		de.ecos, de.err = osEcosystems(p.Ecosystem, tf.distro)
		if tf.osEcos == nil {
			tf.osEcos = map[inventory.Ecosystem]distroEcosystems{}
		}
		tf.osEcos[p.Ecosystem] = de
	}
	if de.err != nil {
		return target{}, de.err
	}
	t := target{ecosystems: de.ecos, name: name, version: ver, distro: true}
	switch p.Ecosystem {
	case inventory.Deb:
		t.scheme = version.Dpkg
		if strings.Contains(ver, "+b") {
			t.version = binNMU().ReplaceAllString(ver, "")
		}
	case inventory.APK:
		t.scheme = version.APK
	case inventory.RPM:
		t.scheme = version.RPM
	}
	return t, nil
}

// osEcosystems returns the OSV ecosystems of the OS packages of ecosystem
// eco on distro d, or why they cannot be matched.
func osEcosystems(eco inventory.Ecosystem, d *inventory.Distro) ([]string, error) {
	if eco != inventory.Deb && eco != inventory.APK && eco != inventory.RPM {
		return nil, unmatchable{eco, "no advisory source for this ecosystem"}
	}
	if d == nil || d.ID == "" {
		return nil, unmatchable{eco, "the image's distro is unknown, so no vulnerability feed applies"}
	}
	var ecos []string
	switch eco {
	case inventory.Deb:
		switch d.ID {
		case "debian":
			rel := majorOf(d.VersionID)
			if rel == "" {
				rel = debianReleases[d.Codename]
			}
			if rel == "" {
				return nil, unmatchable{eco, fmt.Sprintf("Debian release of %q unknown", d.PrettyName)}
			}
			ecos = []string{"Debian:" + rel}
		case "ubuntu":
			if d.VersionID == "" {
				return nil, unmatchable{eco, "Ubuntu release unknown"}
			}
			// OSV marks LTS releases with a suffix; the feed may or may not.
			ecos = []string{"Ubuntu:" + d.VersionID + ":LTS", "Ubuntu:" + d.VersionID}
		}
	case inventory.APK:
		switch d.ID {
		case "alpine":
			mm := majorMinorOf(d.VersionID)
			if mm == "" {
				return nil, unmatchable{eco, fmt.Sprintf("Alpine release of %q unknown", d.VersionID)}
			}
			ecos = []string{"Alpine:v" + mm}
		case "wolfi":
			ecos = []string{"Wolfi"}
		case "chainguard":
			ecos = []string{"Chainguard"}
		}
	case inventory.RPM:
		switch d.ID {
		case "rocky":
			ecos = []string{"Rocky Linux:" + majorOf(d.VersionID)}
		case "almalinux":
			ecos = []string{"AlmaLinux:" + majorOf(d.VersionID)}
		case "mageia":
			ecos = []string{"Mageia:" + majorOf(d.VersionID)}
		case "photon":
			ecos = []string{"Photon OS:" + d.VersionID}
		case "opensuse-leap", "opensuse-tumbleweed":
			ecos = []string{"openSUSE:" + d.PrettyName}
		case "sles":
			ecos = []string{"SUSE:" + d.PrettyName}
		}
	}
	if len(ecos) == 0 {
		return nil, unmatchable{eco, fmt.Sprintf("no vulnerability feed for distro %s %s", d.ID, d.VersionID)}
	}
	return ecos, nil
}

// normalizePyPI is PEP 503's name normalisation.
func normalizePyPI(name string) string {
	if isNormalPyPI(name) {
		return name // most names are already: no copy
	}
	return normalizePyPIName(name)
}

// normalizePyPIName is normalizePyPI for any name (it copies).
func normalizePyPIName(name string) string {
	var b strings.Builder
	sep := false
	for _, c := range strings.ToLower(name) {
		if c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteRune(c)
	}
	return b.String()
}

// isNormalPyPI reports whether name is its own PEP 503 normalisation:
// lower-case ASCII, with single hyphens between other characters.
func isNormalPyPI(name string) bool {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 0x80, c >= 'A' && c <= 'Z', c == '_', c == '.':
			return false
		case c == '-' && (i == 0 || i == len(name)-1 || name[i-1] == '-'):
			return false
		}
	}
	return true
}

func majorOf(v string) string {
	m, _, _ := strings.Cut(v, ".")
	return m
}

func majorMinorOf(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return ""
	}
	minor := parts[1]
	if i := strings.IndexAny(minor, "_-"); i >= 0 {
		minor = minor[:i]
	}
	return parts[0] + "." + minor
}
