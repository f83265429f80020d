package version

import (
	"fmt"
	"strings"
)

// dpkgScheme is Debian's version ordering (deb-version(7), Debian policy
// 5.6.12): [epoch:]upstream[-revision], compared part by part with dpkg's
// verrevcmp, where "~" sorts before everything, even the end of the string.
//
// Written here rather than taken from knqyf263/go-deb-version: that library
// runs two regular expressions and reflect.DeepEqual on every comparison and
// clamps digit runs that overflow an int, so two long numbers (date-stamped
// snapshots) compare equal. verrevcmp is short, allocation-free, and
// compares digit runs of any length.
type dpkgScheme struct{}

type dpkgVersion struct {
	epoch    string // digits without leading zeros; "" is epoch 0
	upstream string
	revision string
	orig     string
}

func (dpkgScheme) Name() string { return "dpkg" }

func (dpkgScheme) Parse(s string) (Version, error) {
	v := dpkgVersion{orig: s}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return nil, fmt.Errorf("%w: empty dpkg version", ErrInvalid)
	}
	if e, r, ok := strings.Cut(rest, ":"); ok {
		if e == "" || strings.Trim(e, "0123456789") != "" {
			return nil, fmt.Errorf("%w: dpkg version %q: epoch %q is not a number", ErrInvalid, s, e)
		}
		v.epoch = strings.TrimLeft(e, "0")
		rest = r
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.upstream, v.revision = rest[:i], rest[i+1:]
		if v.revision == "" {
			return nil, fmt.Errorf("%w: dpkg version %q: empty revision", ErrInvalid, s)
		}
	} else {
		v.upstream = rest
	}
	if v.upstream == "" || !isDigit(v.upstream[0]) {
		return nil, fmt.Errorf("%w: dpkg version %q: upstream version must start with a digit", ErrInvalid, s)
	}
	for i := 0; i < len(v.upstream); i++ {
		if c := v.upstream[i]; !isAlnum(c) && !strings.ContainsRune(".+~-:", rune(c)) {
			return nil, fmt.Errorf("%w: dpkg version %q: invalid character %q", ErrInvalid, s, c)
		}
	}
	for i := 0; i < len(v.revision); i++ {
		if c := v.revision[i]; !isAlnum(c) && !strings.ContainsRune(".+~", rune(c)) {
			return nil, fmt.Errorf("%w: dpkg version %q: invalid character %q in revision", ErrInvalid, s, c)
		}
	}
	return v, nil
}

func (v dpkgVersion) String() string { return v.orig }

func (v dpkgVersion) Compare(other Version) int {
	o := other.(dpkgVersion)
	if c := compareDigits(v.epoch, o.epoch); c != 0 {
		return c
	}
	if c := verrevcmp(v.upstream, o.upstream); c != 0 {
		return c
	}
	return verrevcmp(v.revision, o.revision)
}

// dpkgOrder is the weight of one character in a non-digit run: the end of
// the string and digits weigh 0, "~" sorts before them, letters next, and
// every other character after all letters.
func dpkgOrder(c byte) int {
	switch {
	case c == '~':
		return -1
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	default:
		return int(c) + 256
	}
}

// verrevcmp compares alternating runs of non-digits (character by
// character, by dpkgOrder) and digits (numerically).
func verrevcmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := 0, 0
			if i < len(a) {
				ac = dpkgOrder(a[i])
			}
			if j < len(b) {
				bc = dpkgOrder(b[j])
			}
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		si := i
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		sj := j
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareDigits(a[min(si, len(a)):min(i, len(a))], b[min(sj, len(b)):min(j, len(b))]); c != 0 {
			return c
		}
	}
	return 0
}

// compareDigits compares two runs of ASCII digits as numbers of any size.
func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
