package match

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
)

// TestNewEcosystems: hex and pub packages are looked up in OSV's Hex and
// Pub ecosystems; conda and conan packages, which no advisory source
// covers, are unmatchable for that reason, not because of the distro.
func TestNewEcosystems(t *testing.T) {
	debian := &inventory.Distro{ID: "debian", VersionID: "12"}
	for _, tt := range []struct {
		eco  inventory.Ecosystem
		want string
	}{{inventory.Hex, "Hex"}, {inventory.Pub, "Pub"}} {
		tg, err := targetFor(&inventory.Package{Ecosystem: tt.eco, Name: "x", Version: "1.2.3"}, debian)
		if err != nil || len(tg.ecosystems) != 1 || tg.ecosystems[0] != tt.want || tg.scheme == nil {
			t.Errorf("%s: %+v, %v", tt.eco, tg, err)
		}
	}
	for _, eco := range []inventory.Ecosystem{inventory.Conda, inventory.Conan} {
		_, err := targetFor(&inventory.Package{Ecosystem: eco, Name: "x", Version: "1"}, debian)
		if err == nil || !strings.Contains(err.Error(), "no advisory source") {
			t.Errorf("%s: %v", eco, err)
		}
	}
}

// FuzzNormalPyPINames: a name the fast path returns as it is is its own
// normalisation.
func FuzzNormalPyPINames(f *testing.F) {
	for _, s := range []string{"requests", "Django", "zope.interface", "a--b", "-x", "x-", "ruamel_yaml", "ünï", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if isNormalPyPI(name) && normalizePyPIName(name) != name {
			t.Fatalf("%q is taken as normalised, but normalises to %q", name, normalizePyPIName(name))
		}
		if got, want := normalizePyPI(name), normalizePyPIName(name); got != want {
			t.Fatalf("normalizePyPI(%q) = %q, want %q", name, got, want)
		}
	})
}
