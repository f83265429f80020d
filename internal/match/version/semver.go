package version

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
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
	loose  bool // npm: node-semver's loose syntax (see parseSemverLoose)
	golang bool
}

type semverVersion struct {
	num  [3]uint64
	pre  []string // dot-separated pre-release identifiers; nil for a release
	orig string
}

func (s semverScheme) Name() string { return s.name }

func (s semverScheme) Parse(str string) (Version, error) {
	// node-semver trims surrounding blanks in strict mode too.
	t := strings.TrimSpace(str)
	if s.golang {
		if g, ok := GoReleaseToSemver(t); ok {
			t = g
		}
	}
	var (
		v   semverVersion
		err error
	)
	if s.loose {
		v, err = parseSemverLoose(t)
	} else {
		v, err = parseSemver(t)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s version %q: %v", ErrInvalid, s.name, str, err)
	}
	v.orig = str
	return v, nil
}

// parseSemver reads [v]MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]. It is
// hand-written rather than taken from a semver library because the
// libraries compile their regular expressions when the program starts,
// which every berth command paid for; this is also faster per call.
func parseSemver(t string) (semverVersion, error) {
	var v semverVersion
	t = strings.TrimPrefix(t, "v")
	if i := strings.IndexByte(t, '+'); i >= 0 {
		if err := checkIdentifiers(t[i+1:], "build metadata", false); err != nil {
			return v, err
		}
		t = t[:i]
	}
	if i := strings.IndexByte(t, '-'); i >= 0 {
		pre := t[i+1:]
		if err := checkIdentifiers(pre, "pre-release", true); err != nil {
			return v, err
		}
		v.pre = strings.Split(pre, ".")
		t = t[:i]
	}
	parts := strings.Split(t, ".")
	if len(parts) > 3 {
		return v, fmt.Errorf("more than three version numbers")
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || !isNumeric(p) {
			return v, fmt.Errorf("version number %q is not a non-negative integer", p)
		}
		v.num[i] = n
	}
	return v, nil
}

// parseSemverLoose reads what node-semver's loose mode (which npm uses to
// read installed and locked versions) accepts: any run of "v", "=" and
// blanks before the version, a pre-release with or without its "-"
// ("1.2.3beta"), and numeric pre-release identifiers with leading zeros
// (compared as numbers: "1.2.3-01" is "1.2.3-1").
func parseSemverLoose(t string) (semverVersion, error) {
	t = strings.TrimLeft(t, "v= \t")
	build := ""
	if i := strings.IndexByte(t, '+'); i >= 0 {
		t, build = t[:i], t[i:]
	}
	end := 0
	for end < len(t) && (isDigit(t[end]) || t[end] == '.') {
		end++
	}
	// The main version ends at its third number; what follows is the
	// pre-release, whose "-" is optional ("1.2.3-" has the pre-release
	// "-", as node-semver reads it).
	if end < len(t) && strings.Count(t[:end], ".") == 2 && !strings.HasSuffix(t[:end], ".") {
		pre := t[end:]
		if len(pre) > 1 && pre[0] == '-' {
			pre = pre[1:]
		}
		if err := checkIdentifiers(pre, "pre-release", false); err != nil {
			return semverVersion{}, err
		}
		v, err := parseSemver(t[:end] + build)
		if err != nil {
			return v, err
		}
		v.pre = strings.Split(pre, ".")
		return v, nil
	}
	return parseSemver(t + build)
}

// checkIdentifiers applies semver.org §9/§10: non-empty dot-separated
// identifiers of [0-9A-Za-z-], numeric pre-release ones without leading
// zeros.
func checkIdentifiers(s, what string, noLeadingZero bool) error {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return fmt.Errorf("empty %s identifier", what)
		}
		for j := 0; j < len(id); j++ {
			c := id[j]
			if !isDigit(c) && c != '-' && (c|0x20 < 'a' || c|0x20 > 'z') {
				return fmt.Errorf("%s identifier %q has a character other than [0-9A-Za-z-]", what, id)
			}
		}
		if noLeadingZero && len(id) > 1 && id[0] == '0' && isNumeric(id) {
			return fmt.Errorf("numeric %s identifier %q has a leading zero", what, id)
		}
	}
	return nil
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func (v semverVersion) String() string { return v.orig }

func (v semverVersion) Compare(other Version) int {
	o := other.(semverVersion)
	for i := range v.num {
		if c := cmp.Compare(v.num[i], o.num[i]); c != 0 {
			return c
		}
	}
	switch {
	case v.pre == nil && o.pre == nil:
		return 0
	case v.pre == nil:
		return 1
	case o.pre == nil:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(o.pre); i++ {
		if c := comparePreIdentifier(v.pre[i], o.pre[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(v.pre), len(o.pre))
}

// comparePreIdentifier orders numeric identifiers numerically and before
// alphanumeric ones, which compare in ASCII order (semver.org §11.4).
func comparePreIdentifier(a, b string) int {
	an, bn := isNumeric(a), isNumeric(b)
	switch {
	case an && bn:
		// Leading zeros appear only in loose npm versions, where they
		// do not count.
		a, b = trimZeros(a), trimZeros(b)
		if c := cmp.Compare(len(a), len(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
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
