package scan

import (
	"regexp"
	"slices"
	"strings"
	"sync"

	"berth.dev/berth/internal/inventory"
)

// Language packages that a distro's package manager installed (Debian's
// python3-requests puts requests-2.28.1.egg-info under
// /usr/lib/python3/dist-packages) are the distro's build of that code: the
// distro backports fixes without changing the upstream version, and its
// own feed says which of its versions are fixed. Matching the metadata
// against PyPI's records as well would report flaws the distro has fixed
// and report the others twice. Trivy skips such packages for the same
// reason (its OS analyzers list the files the package manager installed
// and the language analyzers ignore those files).
//
// berth's inventory does not record which files the package manager owns,
// so the rule is by directory: these are the directories that Debian
// policy reserves for packaged modules (pip, gem and npm install into
// /usr/local, /var/lib/gems or the application's own folders instead).
// Other distros mix the two in one directory (Alpine's and Fedora's
// site-packages), so nothing is skipped there.
var osManagedDirs = map[string]func() *regexp.Regexp{
	"debian": debianManaged,
	"ubuntu": debianManaged,
}

var debianManaged = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^/usr/(` +
		`lib/python[0-9.]*/dist-packages/` + // python3-*, python-*
		`|share/java/|share/maven-repo/|lib/jvm/` + // lib*-java, openjdk-*
		`|lib/ruby/vendor_ruby/|share/rubygems-integration/|lib/ruby/gems/` + // ruby-*, libruby's default gems
		`|share/nodejs/|lib/nodejs/` + // node-*
		`)`)
})

// osEcosystem is the package ecosystem of each distro whose directories
// are listed above; a rule applies only when the image's package database
// was read, so an image without one keeps every language package.
var osEcosystem = map[string]inventory.Ecosystem{
	"debian": inventory.Deb,
	"ubuntu": inventory.Deb,
}

// OSManaged reports whether p, a package of inv, is a language package
// that inv's OS package manager installed: every place it was found is in
// a directory the distro reserves for its own packages, and the image has
// an OS package database. Such packages stay in the inventory (and the
// SBOM) but are matched only through their OS package.
func OSManaged(inv *inventory.Inventory, p *inventory.Package) bool {
	return osManagedRule(inv)(p)
}

// osManagedRule returns OSManaged for the packages of inv, deciding what
// depends on inv alone once.
func osManagedRule(inv *inventory.Inventory) func(*inventory.Package) bool {
	never := func(*inventory.Package) bool { return false }
	if inv.Distro == nil {
		return never
	}
	dirsFn, ok := osManagedDirs[inv.Distro.ID]
	osEco := osEcosystem[inv.Distro.ID]
	if !ok || !slices.ContainsFunc(inv.Packages, func(p inventory.Package) bool { return p.Ecosystem == osEco }) {
		return never
	}
	dirs := dirsFn()
	return func(p *inventory.Package) bool {
		if p.Ecosystem == osEco || len(p.Locations) == 0 {
			return false
		}
		for _, l := range p.Locations {
			if !dirs.MatchString(l) || strings.Contains(l, "/../") {
				return false
			}
		}
		return true
	}
}
