package version

import (
	"fmt"
	"strings"
)

// rpmScheme is rpm's [epoch:]version[-release] ordering: epochs
// numerically (missing is 0), then version and release with rpmvercmp,
// where runs of digits compare numerically and beat runs of letters, "~"
// sorts before everything (even the end) and "^" after the end but before
// anything else. A version without release sorts before the same version
// with one, which keeps the order total (rpm's dependency matching instead
// ignores a missing release, which is not an ordering).
//
// Written here rather than taken from knqyf263/go-rpm-version: that
// library runs a regular expression and reflect.DeepEqual on every
// comparison, several µs each. rpmvercmp is short and well known.
type rpmScheme struct{}

type rpmVersion struct {
	epoch   string // digits without leading zeros
	version string
	release string
	orig    string
}

func (rpmScheme) Name() string { return "rpm" }

func (rpmScheme) Parse(s string) (Version, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("%w: empty rpm version", ErrInvalid)
	}
	v := rpmVersion{orig: s}
	if e, rest, ok := strings.Cut(t, ":"); ok {
		if e == "" || strings.Trim(e, "0123456789") != "" {
			return nil, fmt.Errorf("%w: rpm version %q: epoch %q is not a number", ErrInvalid, s, e)
		}
		v.epoch = strings.TrimLeft(e, "0")
		t = rest
	}
	// The release follows the last "-", as rpm's parseEVR splits it.
	v.version = t
	if i := strings.LastIndexByte(t, '-'); i >= 0 {
		v.version, v.release = t[:i], t[i+1:]
	}
	// rpm orders any string; a version with no digit or with a blank in
	// it is none a package can have, and is refused rather than ordered
	// (docs/sbom.md, "Version orderings").
	if !strings.ContainsAny(v.version, "0123456789") {
		return nil, fmt.Errorf("%w: rpm version %q has no digits", ErrInvalid, s)
	}
	if strings.ContainsAny(t, " \t") {
		return nil, fmt.Errorf("%w: rpm version %q has a blank", ErrInvalid, s)
	}
	return v, nil
}

func (v rpmVersion) String() string { return v.orig }

func (v rpmVersion) Compare(other Version) int {
	o := other.(rpmVersion)
	if c := compareDigits(v.epoch, o.epoch); c != 0 {
		return c
	}
	if c := rpmvercmp(v.version, o.version); c != 0 {
		return c
	}
	return rpmvercmp(v.release, o.release)
}

// rpmvercmp is rpm's segment comparison (rpmio/rpmvercmp.c).
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		ca, cb := byteAt(a, i), byteAt(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if ca == '^' || cb == '^' {
			switch {
			case i >= len(a):
				return -1
			case j >= len(b):
				return 1
			case ca != '^':
				return 1
			case cb != '^':
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		si, sj := i, j
		num := isDigit(a[i])
		class := isAlpha
		if num {
			class = isDigit
		}
		for i < len(a) && class(a[i]) {
			i++
		}
		for j < len(b) && class(b[j]) {
			j++
		}
		if j == sj {
			// Different kinds of segment: numbers are newer than letters.
			if num {
				return 1
			}
			return -1
		}
		var c int
		if num {
			c = compareDigits(a[si:i], b[sj:j])
		} else {
			c = strings.Compare(a[si:i], b[sj:j])
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}

func byteAt(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}
