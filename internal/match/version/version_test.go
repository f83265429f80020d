package version

import (
	"errors"
	"testing"
)

// ascending lists versions in strictly increasing order; every pair is
// checked both ways. The orderings come from each ecosystem's documentation:
// Debian policy §5.6.12 and deb-version(7); apk-tools' version rules
// (APKBUILD reference, pkgver); rpm's rpmvercmp (tilde/caret); semver.org
// §11; PEP 440's own example ordering; Maven's ComparableVersion javadoc;
// Gem::Version's docs; NuGet's "Package versioning" page; PHP's
// version_compare and Composer's stability flags.
var ascending = []struct {
	scheme Scheme
	vs     []string
}{
	{Dpkg, []string{"1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a", "1.0+", "1.0.", "1.0.1"}},
	{Dpkg, []string{"1.0~rc1-1", "1.0-1", "1.0-1+b1", "1.0-1.1", "1.0-2", "1.0-10", "1.2.3", "1.10", "2.0", "1:0.9", "2:0.1"}},
	{Dpkg, []string{"5.2.15-2", "5.2.15-2+b13", "5.2.15-3", "5.2.15-3+deb12u1"}},
	{Dpkg, []string{"0.0~git20230101123456789012344", "0.0~git20230101123456789012345", "0.0~git30230101123456789012344"}},
	{Dpkg, []string{"1.1.1n-0+deb11u3", "1.1.1n-0+deb11u4", "1.1.1n-0+deb11u5", "1.1.1o-1", "3.0.9-1"}},
	{APK, []string{"1.0_alpha", "1.0_alpha2", "1.0_beta", "1.0_pre", "1.0_rc", "1.0_rc1", "1.0_rc2", "1.0", "1.0-r0", "1.0-r1", "1.0-r9", "1.0-r10", "1.0_cvs", "1.0_svn", "1.0_git", "1.0_hg", "1.0_p1", "1.0_p2", "1.0a", "1.0b", "1.0.1", "1.2", "1.10"}},
	{APK, []string{"1.1.1g-r0", "1.1.1i-r0", "1.1.1k-r0", "1.1.1l-r0"}},
	// With revisions, as apk versions always have them: apk-tools 2.x
	// orders these the same way.
	{APK, []string{"1.0_alpha-r0", "1.0_rc1-r0", "1.0-r0", "1.0-r1", "1.0_p1-r0", "1.0.1-r0", "1.1-r0"}},
	{RPM, []string{"1.0~rc1", "1.0~rc2", "1.0", "1.0^git1", "1.0^git2", "1.0.1", "1.0.10", "2.0", "1:0.1"}},
	{RPM, []string{"1.0a", "1.0.1", "1.0.1-1", "1.0.1-2.el9", "1.0.1-10.el9"}},
	{RPM, []string{"1.0", "1.0^", "1.0^git1", "1.0a", "2.0.1a", "2.0.1.1", "1:0.1-1"}},
	{SemVer, []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}},
	{NPM, []string{"0.0.1", "4.17.15", "4.17.16", "4.17.21", "=4.17.22", "v4.18.0"}},
	{Go, []string{"v0.0.0-20210226172049-e18ecbb05110", "v0.0.0-20211209124913-491a49abca63", "v0.7.0", "v0.17.0", "0.23.0"}},
	{Go, []string{"1.26.0-0", "go1.26rc1", "go1.26rc2", "go1.26", "go1.26.1", "1.26.8", "go1.27"}},
	{Go, []string{"go1.9beta1", "go1.9beta2", "go1.9rc1", "go1.9", "1.9.1"}},
	{Cargo, []string{"0.1.0", "0.1.1-pre", "0.1.1", "1.0.0"}},
	{PEP440, []string{"1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456", "1.0b2", "1.0b2.post345.dev456", "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5", "1.0+abc.7", "1.0+5", "1.0.post456.dev34", "1.0.post456", "1.0.15", "1.1.dev1"}},
	{PEP440, []string{"2.0", "2.0.1", "2.28.1", "2.31.0", "1!0.1"}},
	{PEP440, []string{"2022.9.24", "2022.12.7", "2023.7.22", "2024.07.4"}},
	{PEP440, []string{"1.0+abc", "1.0+abc.def", "1.0+abc.1", "1.0+1", "1.0+1.abc", "1.0+2"}},
	{Maven, []string{"1-alpha", "1-alpha-2", "1-beta", "1-milestone", "1-rc", "1-SNAPSHOT", "1", "1-sp", "1-sp1", "1-zzz", "1.0.1", "1.1"}},
	{Maven, []string{"2.9.10.7", "2.9.10.8", "2.12.7", "2.12.7.1", "2.13.4", "2.13.4.2", "2.14.0-rc1", "2.14.0"}},
	{Gem, []string{"1.0.a", "1.0.a.2", "1.0.b", "1.0.rc1", "1.0", "1.0.1", "1.1", "3.2.5", "3.2.10"}},
	{NuGet, []string{"1.0.0-alpha", "1.0.0-alpha.2", "1.0.0-alpha.10", "1.0.0-Beta", "1.0.0-rc.1", "1.0.0", "1.0.0.1", "1.0.1", "1.10.0", "13.0.1"}},
	{Composer, []string{"1.0.0-dev", "1.0.0-alpha", "1.0.0-alpha2", "1.0.0-beta", "1.0.0-RC1", "1.0.0-RC2", "1.0.0", "1.0.0-p1", "1.0.0.1", "1.0.1", "1.2", "1.10"}},
}

var equal = []struct {
	scheme Scheme
	a, b   string
}{
	{Dpkg, "1.0", "0:1.0"},
	{Dpkg, "1.0", "1.0-0"},
	{Dpkg, "1.01", "1.1"},
	{Dpkg, "00:1.0", "1.0"},
	{APK, "1.0-r0", "1.0-r00"},
	{RPM, "1.01", "1.1"},
	{RPM, "0:1.0-1", "1.0-1"},
	{RPM, "1.0", "1_0"},
	{RPM, "1.0^git1", "1.00^git1"},
	{SemVer, "1.0.0+build.5", "1.0.0"},
	{SemVer, "v1.2.3", "1.2.3"},
	{SemVer, "1.2", "1.2.0"},
	{SemVer, "1.0.0-rc.1+build.5", "1.0.0-rc.1"},
	{Go, "v2.0.0+incompatible", "2.0.0"},
	{Go, "go1.21.3", "1.21.3"},
	{Go, "go1.21", "1.21.0"},
	{Go, "go1.21rc2", "1.21.0-rc.2"},
	{NPM, " =1.2.3 ", "1.2.3"},
	{PEP440, "1.0", "1.0.0"},
	{PEP440, "1.0-1", "1.0.post1"},
	{PEP440, "1.0alpha1", "1.0a1"},
	{PEP440, "1.0c1", "1.0rc1"},
	{PEP440, "V1.0", "1.0"},
	{PEP440, "0!1.0", "1.0"},
	{PEP440, "1.0.post", "1.0.post0"},
	{PEP440, "1.0-r1", "1.0.post1"},
	{PEP440, "1.0.0+ubuntu-1", "1.0+ubuntu.1"},
	{PEP440, "1.0-DEV", "1.0.dev0"},
	{PEP440, "1.0.0-rc.1", "1.0rc1"},
	{Maven, "1", "1.0.0"},
	{Maven, "1-ga", "1"},
	{Maven, "1-final", "1"},
	{Maven, "1.0.0.RELEASE", "1.0.0"},
	{Maven, "1-cr", "1-rc"},
	{Maven, "1.0-a1", "1.0-alpha-1"},
	{Maven, "1.0-ALPHA1", "1.0-alpha1"},
	{Gem, "1.0", "1.0.0"},
	{NuGet, "1.0", "1.0.0.0"},
	{NuGet, "1.0.0-ALPHA", "1.0.0-alpha"},
	{NuGet, "1.0.0+meta", "1.0.0"},
	{NuGet, "01.0.0", "1.0.0"},
	{Composer, "v2.0", "2.0.0.0"},
	{Composer, "v5.4.0", "5.4.0"}, // composer.lock as written against OSV Packagist
	{Composer, "V5.4.0-RC1", "5.4.0-rc1"},
	{Composer, "1.0.0-beta.1", "1.0.0-beta1"},
	{Composer, "1.0.0-b1", "1.0.0-beta1"},
	{Composer, "1.0.0+build", "1.0.0"},
}

var invalid = []struct {
	scheme Scheme
	s      string
}{
	{Dpkg, ""},
	{Dpkg, "a1.0"},
	{Dpkg, "x:1.0"},
	{Dpkg, "1:"},
	{Dpkg, "1.0-"},
	{Dpkg, "1.0 beta"},
	{Dpkg, "1.0-1_2"},
	{APK, "abc"},
	{APK, "1.0_foo"},
	{APK, "1.0-"},
	{RPM, ""},
	{RPM, "abc"},
	{RPM, "x:1.0"},
	{SemVer, ""},
	{SemVer, "1.2.3.4"},
	{SemVer, "latest"},
	{SemVer, "1.2.3-01"},
	{SemVer, "1.2.3-a..b"},
	{SemVer, "1.2.3+"},
	{SemVer, "1.2.3-a_b"},
	{SemVer, "1.-2.3"},
	{Go, "v1.2.3-"},
	{Go, "master"},
	{NPM, "1.2.x"},
	{PEP440, "1.0-beta-foo"},
	{PEP440, "latest"},
	{PEP440, "1.0.0-x.7.z.92"},
	{PEP440, "1.0+"},
	{Maven, "LATEST"},
	{Gem, ""},
	{Gem, "1.0 beta"},
	{NuGet, "1.0.0.0.0"},
	{NuGet, "v1.0"},
	{NuGet, "1.0.0-"},
	{Composer, "dev-main"},
	{Composer, "2.x-dev"},
	{Composer, "1.0#1"},
}

func mustParse(t *testing.T, s Scheme, v string) Version {
	t.Helper()
	p, err := s.Parse(v)
	if err != nil {
		t.Fatalf("%s: Parse(%q): %v", s.Name(), v, err)
	}
	return p
}

func TestAscending(t *testing.T) {
	for _, tc := range ascending {
		t.Run(tc.scheme.Name(), func(t *testing.T) {
			parsed := make([]Version, len(tc.vs))
			for i, v := range tc.vs {
				parsed[i] = mustParse(t, tc.scheme, v)
			}
			for i := range parsed {
				for j := range parsed {
					want := sign(i - j)
					if got := parsed[i].Compare(parsed[j]); got != want {
						t.Errorf("%s: Compare(%q, %q) = %d, want %d", tc.scheme.Name(), tc.vs[i], tc.vs[j], got, want)
					}
				}
			}
		})
	}
}

func TestEqual(t *testing.T) {
	for _, tc := range equal {
		a, b := mustParse(t, tc.scheme, tc.a), mustParse(t, tc.scheme, tc.b)
		if c := a.Compare(b); c != 0 {
			t.Errorf("%s: Compare(%q, %q) = %d, want 0", tc.scheme.Name(), tc.a, tc.b, c)
		}
		if c := b.Compare(a); c != 0 {
			t.Errorf("%s: Compare(%q, %q) = %d, want 0", tc.scheme.Name(), tc.b, tc.a, c)
		}
	}
}

func TestInvalid(t *testing.T) {
	for _, tc := range invalid {
		v, err := tc.scheme.Parse(tc.s)
		if err == nil {
			t.Errorf("%s: Parse(%q) = %v, want an error", tc.scheme.Name(), tc.s, v)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Parse(%q) error %v does not wrap ErrInvalid", tc.scheme.Name(), tc.s, err)
		}
	}
}

func TestForEcosystem(t *testing.T) {
	for eco, want := range map[string]Scheme{
		"Debian:12":                       Dpkg,
		"Ubuntu:22.04:LTS":                Dpkg,
		"Alpine:v3.19":                    APK,
		"Red Hat:rhel_aus:8.4::appstream": RPM,
		"npm":                             NPM,
		"Go":                              Go,
		"PyPI":                            PEP440,
		"Maven:https://maven.google.com":  Maven,
		"crates.io":                       Cargo,
		"RubyGems":                        Gem,
		"NuGet":                           NuGet,
		"Packagist":                       Composer,
	} {
		got, ok := ForEcosystem(eco)
		if !ok || got != want {
			t.Errorf("ForEcosystem(%q) = %v, %v; want %s", eco, got, ok, want.Name())
		}
	}
	if s, ok := ForEcosystem("Nonesuch"); ok {
		t.Errorf("ForEcosystem(Nonesuch) = %v, want none", s)
	}
	for _, s := range []Scheme{Dpkg, APK, RPM, SemVer, NPM, Go, Cargo, PEP440, Maven, Gem, NuGet, Composer} {
		if got, ok := ByName(s.Name()); !ok || got != s {
			t.Errorf("ByName(%q) = %v", s.Name(), got)
		}
	}
}

func TestCacheParsesOnce(t *testing.T) {
	c := NewCache()
	a, err := c.Parse(Dpkg, "1:0.9")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Parse(Dpkg, "1:0.9")
	if a != b {
		t.Errorf("cached parse returned a different value")
	}
	if _, err := c.Parse(Dpkg, "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("cached error = %v", err)
	}
	if _, err := c.Parse(Dpkg, "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("second cached error = %v", err)
	}
	// The same string under another scheme is parsed by that scheme.
	if _, err := c.Parse(SemVer, "1:0.9"); err == nil {
		t.Errorf("semver accepted 1:0.9 via the dpkg cache entry")
	}
}
