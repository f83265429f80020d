package version

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// pep440Scheme is Python's version ordering (PEP 440): epoch, release
// numbers (trailing zeros ignored), then .devN < aN < bN < rcN < release <
// .postN, a development release of a pre or post release just before it,
// and local versions (+local) after the public version they extend, their
// numeric parts after alphanumeric ones. Alternative spellings (alpha, c,
// pre, preview, rev, r, "-1" post releases, "_" and "-" separators, a
// leading "v", upper case) are normalised as PEP 440 prescribes.
//
// Written here rather than taken from aquasecurity/go-pep440-version: its
// Compare formats both versions with fmt on every call (about 4 µs and 17
// allocations), and PyPI records carry long versions lists that are
// compared one by one. Parsing here builds the comparison key once.
type pep440Scheme struct{}

// pep440Pattern follows the grammar of PEP 440's "Appendix B", written for
// lower-cased, trimmed input.
var pep440Pattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^v?` +
		`(?:([0-9]+)!)?` + // epoch
		`([0-9]+(?:\.[0-9]+)*)` + // release
		`(?:[-_.]?(alpha|beta|preview|pre|rc|a|b|c)[-_.]?([0-9]+)?)?` + // pre-release
		`(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?` + // post-release
		`(?:[-_.]?(dev)[-_.]?([0-9]+)?)?` + // development release
		`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$`)
}) // local version

// Pre-release ranks; pep440NoPre sorts a final release after its
// pre-releases, pep440DevOnly a bare .devN before them.
const (
	pep440DevOnly = -1
	pep440Alpha   = 0
	pep440Beta    = 1
	pep440RC      = 2
	pep440NoPre   = 3
)

type pep440Version struct {
	epoch   string   // digits without leading zeros
	release []string // digits without leading zeros, trailing zeros dropped
	preRank int
	preNum  string
	hasPost bool
	postNum string
	hasDev  bool
	devNum  string
	local   []string // lower-cased parts
	orig    string
}

func (pep440Scheme) Name() string { return "pep440" }

func (pep440Scheme) Parse(s string) (Version, error) {
	m := pep440Pattern().FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return nil, fmt.Errorf("%w: %q is not a PEP 440 version", ErrInvalid, s)
	}
	v := pep440Version{orig: s, epoch: strings.TrimLeft(m[1], "0"), preRank: pep440NoPre}
	for _, n := range strings.Split(m[2], ".") {
		v.release = append(v.release, strings.TrimLeft(n, "0"))
	}
	for len(v.release) > 0 && v.release[len(v.release)-1] == "" {
		v.release = v.release[:len(v.release)-1]
	}
	switch m[3] {
	case "a", "alpha":
		v.preRank = pep440Alpha
	case "b", "beta":
		v.preRank = pep440Beta
	case "rc", "c", "pre", "preview":
		v.preRank = pep440RC
	}
	v.preNum = strings.TrimLeft(m[4], "0")
	if m[5] != "" || m[6] != "" {
		v.hasPost = true
		v.postNum = strings.TrimLeft(m[5]+m[7], "0")
	}
	if m[8] != "" {
		v.hasDev = true
		v.devNum = strings.TrimLeft(m[9], "0")
		if v.preRank == pep440NoPre && !v.hasPost {
			v.preRank = pep440DevOnly
		}
	}
	if m[10] != "" {
		v.local = strings.FieldsFunc(m[10], func(r rune) bool { return r == '.' || r == '-' || r == '_' })
	}
	return v, nil
}

func (v pep440Version) String() string { return v.orig }

func (v pep440Version) Compare(other Version) int {
	o := other.(pep440Version)
	if c := compareDigits(v.epoch, o.epoch); c != 0 {
		return c
	}
	for i := 0; i < len(v.release) || i < len(o.release); i++ {
		var a, b string
		if i < len(v.release) {
			a = v.release[i]
		}
		if i < len(o.release) {
			b = o.release[i]
		}
		if c := compareDigits(a, b); c != 0 {
			return c
		}
	}
	if v.preRank != o.preRank {
		return sign(v.preRank - o.preRank)
	}
	if c := compareDigits(v.preNum, o.preNum); c != 0 {
		return c
	}
	if v.hasPost != o.hasPost {
		if v.hasPost {
			return 1
		}
		return -1
	}
	if c := compareDigits(v.postNum, o.postNum); c != 0 {
		return c
	}
	if v.hasDev != o.hasDev {
		if v.hasDev {
			return -1
		}
		return 1
	}
	if c := compareDigits(v.devNum, o.devNum); c != 0 {
		return c
	}
	return compareLocal(v.local, o.local)
}

// compareLocal orders local version labels: none first, then part by
// part, a numeric part after an alphanumeric one, and a shorter label
// before a longer one it prefixes.
func compareLocal(a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		an, bn := isNumber(a[i]), isNumber(b[i])
		var c int
		switch {
		case an && bn:
			c = compareDigits(a[i], b[i])
		case an:
			c = 1
		case bn:
			c = -1
		default:
			c = strings.Compare(a[i], b[i])
		}
		if c != 0 {
			return c
		}
	}
	return sign(len(a) - len(b))
}
