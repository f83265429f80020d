package match

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
)

// recordingSource records every (ecosystem, name) the matcher asks about.
type recordingSource struct {
	mu    sync.Mutex
	asked map[Lookup]bool
}

func (s *recordingSource) Vulnerabilities(_ context.Context, eco, name string) ([]*osv.Vulnerability, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[Lookup{eco, name}] = true
	return nil, nil
}

// TestLookupsAreWhatMatchAsks proves Lookups against Match itself: for
// inventories of every kind, the keys Lookups lists are exactly the keys
// Match looks up. The server's re-match index depends on it: a key missing
// from Lookups would be a database change that never reaches the images it
// affects.
func TestLookupsAreWhatMatchAsks(t *testing.T) {
	deb := func(name, ver, src string) inventory.Package {
		p := pkg(inventory.Deb, name, ver)
		p.SourceName = src
		return p
	}
	for _, tc := range []struct {
		name string
		inv  inventory.Inventory
	}{
		{"languages", inventory.Inventory{Packages: []inventory.Package{
			pkg(inventory.NPM, "lodash", "4.17.20"), pkg(inventory.PyPI, "Jinja2", "2.10"),
			pkg(inventory.Go, "stdlib", "go1.26.5"), pkg(inventory.Go, "golang.org/x/net", "v0.17.0"),
			pkg(inventory.NPM, "lodash", "4.17.20"), // twice: asked once
		}}},
		{"debian by source package", inventory.Inventory{
			Distro: &inventory.Distro{ID: "debian", VersionID: "12"},
			Packages: []inventory.Package{
				deb("libssl3", "3.0.11-1~deb12u2", "openssl"), deb("openssl", "3.0.11-1~deb12u2", ""),
				deb("libc6", "2.36-9+deb12u4", "glibc"), pkg(inventory.NPM, "minimist", "1.2.0"),
			}}},
		{"ubuntu under both spellings", inventory.Inventory{
			Distro:   &inventory.Distro{ID: "ubuntu", VersionID: "22.04"},
			Packages: []inventory.Package{deb("bash", "5.1-6ubuntu1", "")}}},
		{"alpine", inventory.Inventory{
			Distro:   &inventory.Distro{ID: "alpine", VersionID: "3.19.1"},
			Packages: []inventory.Package{pkg(inventory.APK, "busybox", "1.36.1-r15")}}},
		{"unknown distro asks nothing for OS packages", inventory.Inventory{
			Packages: []inventory.Package{pkg(inventory.APK, "busybox", "1.36.1-r15"), pkg(inventory.Cargo, "regex", "1.5.4")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &recordingSource{asked: map[Lookup]bool{}}
			if _, err := New(src).Match(context.Background(), tc.inv); err != nil {
				t.Fatal(err)
			}
			got := Lookups(tc.inv)
			var asked []Lookup
			for l := range src.asked {
				asked = append(asked, l)
			}
			byKey := func(a, b Lookup) int {
				if a.Ecosystem != b.Ecosystem {
					return strings.Compare(a.Ecosystem, b.Ecosystem)
				}
				return strings.Compare(a.Name, b.Name)
			}
			slices.SortFunc(got, byKey)
			slices.SortFunc(asked, byKey)
			if !slices.Equal(got, asked) {
				t.Errorf("Lookups = %v\nMatch asked %v", got, asked)
			}
			if len(got) == 0 && tc.name != "unknown distro asks nothing for OS packages" {
				t.Error("no lookups: the case tests nothing")
			}
		})
	}
}
