package version

import (
	"fmt"
	"strings"
)

// apkScheme is apk-tools' ordering for Alpine, Wolfi and Chainguard:
// number{.number}[letter]{_suffix[number]}[-rN], where
// _alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git < _hg < _p,
// a component with leading zeros compares as a fraction (1.01 < 1.1), and a
// version with a revision sorts after the same version without one.
//
// Written here, following apk-tools' version.c token by token, rather than
// taken from knqyf263/go-apk-version. That library ports apk-tools 2.x
// faithfully, including its slip after a zero component: when no revision
// follows, the token after ".0" is lost, so 1.0_alpha sorts after 1.0,
// against the documented suffix order. Installed and secdb versions always
// carry -rN, and there both orderings agree (tested below); this one keeps
// the documented order everywhere. The library also allocates two 4 KiB
// readers per comparison; here a version is tokenised once at Parse.
type apkScheme struct{}

type apkTokenType int

// Token types in apk-tools' order; the order matters for comparison.
const (
	apkDigitOrZero apkTokenType = iota
	apkDigit
	apkLetter
	apkSuffix
	apkSuffixNo
	apkRevisionNo
	apkEnd
)

type apkToken struct {
	typ apkTokenType
	val int64
}

type apkVersion struct {
	toks []apkToken // always ends with an apkEnd token
	orig string
}

var (
	apkPreSuffixes  = []string{"alpha", "beta", "pre", "rc"}
	apkPostSuffixes = []string{"cvs", "svn", "git", "hg", "p"}
)

func (apkScheme) Name() string { return "apk" }

func (apkScheme) Parse(s string) (Version, error) {
	t := strings.TrimSpace(s)
	bad := func(why string) error { return fmt.Errorf("%w: apk version %q: %s", ErrInvalid, s, why) }
	if t == "" {
		return nil, bad("empty")
	}
	v := apkVersion{orig: s}
	typ := apkDigit
	pos := 0
	for pos < len(t) {
		tok := apkToken{typ: typ}
		next := apkTokenType(-1)
		switch typ {
		case apkDigitOrZero, apkDigit, apkSuffixNo, apkRevisionNo:
			if typ == apkDigitOrZero && t[pos] == '0' {
				n := 0
				for pos < len(t) && t[pos] == '0' {
					pos++
					n++
				}
				tok.val = int64(-n)
				if pos < len(t) && isDigit(t[pos]) {
					next = apkDigit
				}
				break
			}
			start := pos
			for pos < len(t) && isDigit(t[pos]) {
				pos++
			}
			if pos == start && typ != apkDigitOrZero {
				return nil, bad("expected a number")
			}
			if pos-start > 18 {
				return nil, bad("number too long")
			}
			for _, c := range t[start:pos] {
				tok.val = tok.val*10 + int64(c-'0')
			}
		case apkLetter:
			tok.val = int64(t[pos])
			pos++
		case apkSuffix:
			found := false
			for i, sfx := range apkPreSuffixes {
				if strings.HasPrefix(t[pos:], sfx) {
					tok.val, found = int64(i-len(apkPreSuffixes)), true
					pos += len(sfx)
					break
				}
			}
			for i, sfx := range apkPostSuffixes {
				if !found && strings.HasPrefix(t[pos:], sfx) {
					tok.val, found = int64(i), true
					pos += len(sfx)
				}
			}
			if !found {
				return nil, bad("unknown suffix")
			}
		}
		v.toks = append(v.toks, tok)
		if pos >= len(t) {
			break
		}
		if next < 0 {
			var err error
			if next, pos, err = apkNextType(t, pos, typ); err != nil {
				return nil, bad(err.Error())
			}
		}
		typ = next
	}
	v.toks = append(v.toks, apkToken{typ: apkEnd})
	return v, nil
}

// apkNextType reads the separator at t[pos] and says which token follows
// the current one of type cur, as apk-tools' next_token does, refusing the
// transitions apk-tools refuses (e.g. a "." after a suffix).
func apkNextType(t string, pos int, cur apkTokenType) (apkTokenType, int, error) {
	c := t[pos]
	var n apkTokenType
	switch {
	case (cur == apkDigit || cur == apkDigitOrZero) && c >= 'a' && c <= 'z':
		n = apkLetter
	case cur == apkLetter && isDigit(c):
		n = apkDigit
	case cur == apkSuffix && isDigit(c):
		n = apkSuffixNo
	case c == '.':
		n, pos = apkDigitOrZero, pos+1
	case c == '_':
		n, pos = apkSuffix, pos+1
	case c == '-' && pos+1 < len(t) && t[pos+1] == 'r':
		n, pos = apkRevisionNo, pos+2
	default:
		return 0, pos, fmt.Errorf("unexpected %q", c)
	}
	if n < cur && !(n == apkDigitOrZero && cur == apkDigit) && !(n == apkSuffix && cur == apkSuffixNo) && !(n == apkDigit && cur == apkLetter) {
		return 0, pos, fmt.Errorf("unexpected %q", c)
	}
	return n, pos, nil
}

func (v apkVersion) String() string { return v.orig }

func (v apkVersion) Compare(other Version) int {
	o := other.(apkVersion)
	for i := 0; ; i++ {
		a, b := v.toks[i], o.toks[i]
		if a.typ != b.typ {
			// Equal so far: the longer version is greater, unless what it
			// continues with is a pre-release suffix.
			if a.typ == apkSuffix && a.val < 0 {
				return -1
			}
			if b.typ == apkSuffix && b.val < 0 {
				return 1
			}
			if a.typ > b.typ {
				return -1
			}
			return 1
		}
		if a.typ == apkEnd {
			return 0
		}
		if a.val != b.val {
			if a.val < b.val {
				return -1
			}
			return 1
		}
	}
}
