package version

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// semverScheme is SemVer 2.0 precedence (semver.org §11): major, minor and
// patch numerically, a pre-release sorts before its release, pre-release
// identifiers compare numerically when numeric and before any alphanumeric
// one, and build metadata is ignored. npm, crates.io and OSV's SEMVER ranges
// all order this way; npm's rule that a range excludes pre-releases of other
// tuples belongs to node-semver range strings, not to OSV events, which are
// plain orderings.
//
// A leading "v" is accepted (Go modules, and installed versions checked
// against SEMVER ranges). Missing minor or patch numbers read as 0.
//
// With golang set, the scheme also reads Go toolchain versions as the Go
// vulnerability database writes them for stdlib: "go1.21.3" is 1.21.3,
// "go1.21" is 1.21.0 and "go1.21rc2" is 1.21.0-rc.2. "+incompatible" is
// build metadata and so does not take part in ordering, as in Go itself.
type semverScheme struct {
	name   string
	loose  bool // npm: also accept "=1.2.3" and surrounding spaces
	golang bool
}

type semverVersion struct {
	v    *semver.Version
	orig string
}

func (s semverScheme) Name() string { return s.name }

func (s semverScheme) Parse(str string) (Version, error) {
	t := str
	if s.loose {
		t = strings.TrimPrefix(strings.TrimSpace(t), "=")
	}
	if s.golang {
		if g, ok := GoReleaseToSemver(t); ok {
			t = g
		}
	}
	v, err := semver.NewVersion(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %s version %q: %v", ErrInvalid, s.name, str, err)
	}
	return semverVersion{v: v, orig: str}, nil
}

func (v semverVersion) String() string { return v.orig }

func (v semverVersion) Compare(other Version) int {
	return v.v.Compare(other.(semverVersion).v)
}

// GoReleaseToSemver turns a Go release name into semver: go1.21.3 →
// 1.21.3, go1.21 → 1.21.0, go1.21rc2 → 1.21.0-rc.2, go1.9beta1 →
// 1.9.0-beta.1. It reports false for strings that are not "go" + a release.
func GoReleaseToSemver(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, "go")
	if !ok || rest == "" || !isDigit(rest[0]) {
		return "", false
	}
	num := rest
	pre := ""
	for _, tag := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(rest, tag); i > 0 {
			num, pre = rest[:i], tag+"."+rest[i+len(tag):]
			if rest[i+len(tag):] == "" {
				pre = tag
			}
			break
		}
	}
	switch strings.Count(num, ".") {
	case 0:
		num += ".0.0"
	case 1:
		num += ".0"
	}
	if pre != "" {
		return num + "-" + pre, true
	}
	return num, true
}
