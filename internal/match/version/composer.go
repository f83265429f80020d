package version

import (
	"fmt"
	"strings"
)

// composerScheme is the ordering Composer applies to Packagist versions:
// the version is normalised as Composer's VersionParser does (a leading "v"
// dropped, the numeric part padded to four numbers, build metadata
// dropped) and then compared as PHP's version_compare compares: runs of
// digits and of letters are parts, and the special forms order
// dev < alpha = a < beta = b < RC = rc < (number or end) < pl = p = patch.
// Any other word sorts before dev.
//
// "patch" is a post-release here, as Composer's stability flags mean it,
// although version_compare alone would not know the word. Branch names
// ("dev-main", "2.x-dev") are not versions and fail to parse.
//
// Hand-written: no Go library for Composer versions downloads here.
type composerScheme struct{}

type composerVersion struct {
	parts []string
	orig  string
}

func (composerScheme) Name() string { return "composer" }

func (composerScheme) Parse(s string) (Version, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t, _, _ = strings.Cut(t, "+")
	t = strings.TrimPrefix(t, "v")
	if t == "" || !isDigit(t[0]) || strings.HasPrefix(t, "dev-") || strings.HasSuffix(t, "-dev") && strings.Contains(t, "x") {
		return nil, fmt.Errorf("%w: Composer version %q", ErrInvalid, s)
	}
	// Split into runs of digits and of letters; every other character is a
	// separator, as in version_compare's canonicalisation.
	var parts []string
	for i := 0; i < len(t); {
		j := i
		switch {
		case isDigit(t[i]):
			for j < len(t) && isDigit(t[j]) {
				j++
			}
		case isAlpha(t[i]):
			for j < len(t) && isAlpha(t[j]) {
				j++
			}
		default:
			if !strings.ContainsRune(".-_", rune(t[i])) {
				return nil, fmt.Errorf("%w: Composer version %q: invalid character %q", ErrInvalid, s, t[i])
			}
			i++
			continue
		}
		parts = append(parts, t[i:j])
		i = j
	}
	// Pad the leading numbers to four, as Composer normalises 1.2 to 1.2.0.0.
	n := 0
	for n < len(parts) && isNumber(parts[n]) {
		n++
	}
	for ; n < 4; n++ {
		parts = append(parts[:n], append([]string{"0"}, parts[n:]...)...)
	}
	return composerVersion{parts: parts, orig: s}, nil
}

func (v composerVersion) String() string { return v.orig }

func (v composerVersion) Compare(other Version) int {
	o := other.(composerVersion)
	for i := 0; i < len(v.parts) || i < len(o.parts); i++ {
		var a, b string
		if i < len(v.parts) {
			a = v.parts[i]
		}
		if i < len(o.parts) {
			b = o.parts[i]
		}
		if c := composerPartCompare(a, b); c != 0 {
			return c
		}
	}
	return 0
}

// composerPartCompare orders two parts; "" is the end of a version, which
// weighs as a number would against a word ("1.0.0.0-beta" < "1.0.0.0") and
// less than any number ("1.0.0.0" < "1.0.0.0.1").
func composerPartCompare(a, b string) int {
	an, bn := isNumber(a), isNumber(b)
	switch {
	case an && bn:
		return compareDigits(a, b)
	case a == "" && bn:
		return -1
	case an && b == "":
		return 1
	}
	return sign(composerWeight(a) - composerWeight(b))
}

func composerWeight(p string) int {
	switch p {
	case "dev":
		return 0
	case "alpha", "a":
		return 1
	case "beta", "b":
		return 2
	case "rc", "c":
		return 3
	case "":
		return 4
	case "pl", "p", "patch":
		return 5
	}
	if isNumber(p) {
		return 4
	}
	return -1
}
