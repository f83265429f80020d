package version

import (
	"fmt"
	"strings"
)

// nugetScheme is NuGet's version ordering (NuGet.Versioning): up to four
// numeric parts (a missing part is 0, so 1.0 == 1.0.0 == 1.0.0.0), then
// SemVer 2.0 pre-release precedence with labels compared case-insensitively;
// build metadata is ignored.
//
// Hand-written: no Go library for NuGet versions downloads here, and the
// rules fit in this file.
type nugetScheme struct{}

type nugetVersion struct {
	nums [4]string // digit runs without leading zeros
	pre  []string  // lower-cased pre-release labels
	orig string
}

func (nugetScheme) Name() string { return "nuget" }

func (nugetScheme) Parse(s string) (Version, error) {
	v := nugetVersion{orig: s}
	t := strings.TrimSpace(s)
	t, _, _ = strings.Cut(t, "+")
	t, pre, hasPre := strings.Cut(t, "-")
	parts := strings.Split(t, ".")
	if len(parts) > 4 || t == "" {
		return nil, fmt.Errorf("%w: NuGet version %q: want 1 to 4 numeric parts", ErrInvalid, s)
	}
	for i, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("%w: NuGet version %q: part %q is not a number", ErrInvalid, s, p)
		}
		v.nums[i] = strings.TrimLeft(p, "0")
	}
	if hasPre {
		for _, l := range strings.Split(pre, ".") {
			if l == "" || strings.Trim(strings.ToLower(l), "0123456789abcdefghijklmnopqrstuvwxyz-") != "" {
				return nil, fmt.Errorf("%w: NuGet version %q: bad pre-release label %q", ErrInvalid, s, l)
			}
			v.pre = append(v.pre, strings.ToLower(l))
		}
	}
	return v, nil
}

func (v nugetVersion) String() string { return v.orig }

func (v nugetVersion) Compare(other Version) int {
	o := other.(nugetVersion)
	for i := range v.nums {
		if c := compareDigits(v.nums[i], o.nums[i]); c != 0 {
			return c
		}
	}
	return comparePrerelease(v.pre, o.pre)
}

// comparePrerelease applies SemVer 2.0 §11 to two lists of pre-release
// identifiers; an empty list is a release and sorts last.
func comparePrerelease(a, b []string) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		an, bn := isNumber(a[i]), isNumber(b[i])
		var c int
		switch {
		case an && bn:
			c = compareDigits(a[i], b[i])
		case an:
			c = -1
		case bn:
			c = 1
		default:
			c = strings.Compare(a[i], b[i])
		}
		if c != 0 {
			return c
		}
	}
	return sign(len(a) - len(b))
}

func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
