package inventory_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/package-url/packageurl-go"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/testpeers"
)

// sharedImages is the images folder of the shared fixtures; tests fail
// without it.
func sharedImages(t testing.TB) string {
	t.Helper()
	return testpeers.Shared(t, "images")
}

const (
	baseDiffID   = "sha256:3652b7f60bc03635fb84b70e256861e37c645cdd504f5d1392c68075d8c7a445"
	layer2DiffID = "sha256:aabee3329b0cad8e7e027b915b1503624a0c998eb04fded2528bfb58cc7c5ffb"
)

// groundTruth reads a *.dpkg.txt file: name → "version source srcversion arch".
func groundTruth(t *testing.T, p string) map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 5 {
			t.Fatalf("%s: bad line %q", p, line)
		}
		out[cols[0]] = strings.Join(cols[1:], " ")
	}
	return out
}

func scan(t testing.TB, src string, cache *inventory.Cache) *inventory.Inventory {
	t.Helper()
	img, err := image.Open(context.Background(), src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	s := &inventory.Scanner{Analyzers: analyzers.All(), Cache: cache}
	inv, err := s.Scan(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestRealImagesMatchDpkgGroundTruth(t *testing.T) {
	dir := sharedImages(t)
	// One cache for both: kitchen-sink's base layer then comes from the
	// minbase scan, as it would for a user.
	cache, err := inventory.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"debian-bookworm-minbase", "kitchen-sink"} {
		t.Run(name, func(t *testing.T) {
			want := groundTruth(t, filepath.Join(dir, name+".dpkg.txt"))
			inv := scan(t, "oci-archive:"+filepath.Join(dir, name+".oci.tar"), cache)
			got := map[string]string{}
			for _, p := range inv.Packages {
				if p.Ecosystem != inventory.Deb {
					continue
				}
				if _, dup := got[p.Name]; dup {
					t.Errorf("package %s reported twice", p.Name)
				}
				got[p.Name] = strings.Join([]string{p.Version, p.SourceName, p.SourceVersion, p.Arch}, " ")
			}
			for n, w := range want {
				if got[n] != w {
					t.Errorf("%s: got %q, want %q", n, got[n], w)
				}
			}
			for n := range got {
				if _, ok := want[n]; !ok {
					t.Errorf("%s reported but not installed", n)
				}
			}
			if inv.Distro == nil || inv.Distro.ID != "debian" || inv.Distro.VersionID != "12" || inv.Distro.Codename != "bookworm" {
				t.Errorf("distro %+v", inv.Distro)
			}
			if len(inv.Warnings) != 0 {
				t.Errorf("warnings: %q", inv.Warnings)
			}
			if name == "kitchen-sink" {
				t.Run("layer attribution", func(t *testing.T) {
					checkKitchenSinkLayers(t, groundTruth(t, filepath.Join(dir, "debian-bookworm-minbase.dpkg.txt")), inv)
				})
				t.Run("language packages", func(t *testing.T) { checkKitchenSinkLanguages(t, inv) })
			}
		})
	}
}

// checkKitchenSinkLayers compares the layers of kitchen-sink's packages
// with the README: the base's packages come from layer 1, the 35 that apt
// added from layer 2, and the whiteout and secrets layers add none.
func checkKitchenSinkLayers(t *testing.T, base map[string]string, inv *inventory.Inventory) {
	var added []string
	for _, p := range inv.Packages {
		if p.Ecosystem != inventory.Deb {
			continue
		}
		wantLayer := layer2DiffID
		if _, inBase := base[p.Name]; inBase {
			wantLayer = baseDiffID
		} else {
			added = append(added, p.Name)
		}
		if p.Layer != wantLayer {
			t.Errorf("%s: layer %s, want %s", p.Name, p.Layer, wantLayer)
		}
		u, err := packageurl.FromString(p.PURL)
		if err != nil || u.Type != "deb" || u.Namespace != "debian" || u.Name != p.Name || u.Version != p.Version ||
			u.Qualifiers.Map()["distro"] != "debian-12" || u.Qualifiers.Map()["arch"] != p.Arch {
			t.Errorf("%s: purl %s (%v)", p.Name, p.PURL, err)
		}
	}
	// Licenses come from the copyright files, most of them in layer 1
	// while the status file that lists the packages is layer 2's.
	licensed := 0
	for _, p := range inv.Packages {
		if p.Ecosystem == inventory.Deb && len(p.Licenses) > 0 {
			licensed++
		}
		if p.Name == "bash" && !slices.Contains(p.Licenses, "GPL-3+") {
			t.Errorf("bash licenses %q, want GPL-3+ among them", p.Licenses)
		}
	}
	if licensed < 100 {
		t.Errorf("%d of 123 Debian packages have licenses, want at least 100", licensed)
	}
	// The whiteout-only and the secrets layers add no packages.
	for _, p := range inv.Packages {
		if p.Layer == inv.Layers[4].DiffID || p.Layer == inv.Layers[5].DiffID {
			t.Errorf("phantom package %s %s from layer %s", p.Name, p.Version, p.Layer)
		}
	}
	if len(added) != 35 {
		t.Errorf("%d packages attributed to layer 2, want 35: %v", len(added), added)
	}
	sort.Strings(added)
	if len(inv.Layers) != 6 || inv.Layers[1].DiffID != layer2DiffID || !strings.Contains(inv.Layers[1].CreatedBy, "apt-get install") {
		t.Errorf("layers %+v", inv.Layers)
	}
	if inv.Digest != "sha256:3167c5a45f029a23a7ad667739244fbcaf04072911c6e32cd6d2b8a0da440383" ||
		inv.ConfigDigest != "sha256:1e905014e7b6b42499d6d867fc0b2af1c6c602ed03b1bc969d5c166cf2afc2fa" ||
		inv.OS != "linux" || inv.Architecture != "amd64" {
		t.Errorf("image identity: %s %s %s/%s", inv.Digest, inv.ConfigDigest, inv.OS, inv.Architecture)
	}
}

// checkKitchenSinkLanguages checks the packages outside dpkg against the
// README: each npm package once, from node_modules and the lockfile; the
// Python distributions beside (not instead of) their Debian packages; the
// Go binary's modules with the toolchain as stdlib.
func checkKitchenSinkLanguages(t *testing.T, inv *inventory.Inventory) {
	const layer3 = "sha256:48eb869ab9aba5e43d554a7cfb75916ff1d16b9dbcc3b28cf77f965cb57e6944"
	var got []string
	for _, p := range inv.Packages {
		if p.Ecosystem == inventory.Deb {
			continue
		}
		got = append(got, p.PURL+" "+strings.Join(p.Locations, " "))
		if p.Ecosystem == inventory.NPM && (p.Layer != layer3 || p.Analyzer != "npm-installed" || p.Dev) {
			t.Errorf("%s: layer %s, analyzer %s, dev %v", p.Name, p.Layer, p.Analyzer, p.Dev)
		}
	}
	const dist = "/usr/lib/python3/dist-packages/"
	want := []string{
		"pkg:golang/example.com/kitchensink/ks-app /usr/local/bin/ks-app",
		"pkg:golang/golang.org/x/net@v0.0.0-20210226172049-e18ecbb05110 /usr/local/bin/ks-app",
		"pkg:golang/golang.org/x/text@v0.3.5 /usr/local/bin/ks-app",
		"pkg:golang/stdlib@1.26.8 /usr/local/bin/ks-app",
		"pkg:maven/org.apache.commons/commons-lang3@3.12.0 /usr/share/java/commons-lang3.jar",
		"pkg:npm/lodash@4.17.15 /app/node_modules/lodash/package.json /app/package-lock.json",
		"pkg:npm/minimist@1.2.0 /app/node_modules/minimist/package.json /app/package-lock.json",
		"pkg:npm/node-fetch@2.6.0 /app/node_modules/node-fetch/package.json /app/package-lock.json",
		"pkg:pypi/certifi@2022.9.24 " + dist + "certifi-2022.9.24.egg-info/PKG-INFO",
		"pkg:pypi/chardet@5.1.0 " + dist + "chardet-5.1.0.dist-info/METADATA",
		"pkg:pypi/charset-normalizer@3.0.1 " + dist + "charset_normalizer-3.0.1.dist-info/METADATA",
		"pkg:pypi/idna@3.3 " + dist + "idna-3.3.egg-info/PKG-INFO",
		"pkg:pypi/requests@2.28.1 " + dist + "requests-2.28.1.egg-info/PKG-INFO",
		"pkg:pypi/six@1.16.0 " + dist + "six-1.16.0.egg-info/PKG-INFO",
		"pkg:pypi/urllib3@1.26.12 " + dist + "urllib3-1.26.12.egg-info/PKG-INFO",
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("language packages\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The Debian package that installed requests is a package of its own.
	debRequests := slices.ContainsFunc(inv.Packages, func(p inventory.Package) bool {
		return p.Ecosystem == inventory.Deb && p.Name == "python3-requests" && p.SourceName == "requests"
	})
	if !debRequests {
		t.Error("the Debian package python3-requests is missing")
	}
}
