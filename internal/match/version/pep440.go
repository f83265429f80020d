package version

import (
	"fmt"

	pep440 "github.com/aquasecurity/go-pep440-version"
)

// pep440Scheme is Python's version ordering (PEP 440): epoch, release
// numbers (trailing zeros ignored), then .devN < aN < bN < rcN < release <
// .postN, and local versions (+local) after the public version they extend.
// Alternative spellings (alpha, c, pre, rev, "-1" post releases, a leading
// "v", upper case) are normalised as pypa/packaging does.
type pep440Scheme struct{}

type pep440Version struct {
	v    pep440.Version
	orig string
}

func (pep440Scheme) Name() string { return "pep440" }

func (pep440Scheme) Parse(s string) (Version, error) {
	v, err := pep440.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: PEP 440 version %q: %v", ErrInvalid, s, err)
	}
	return pep440Version{v: v, orig: s}, nil
}

func (v pep440Version) String() string { return v.orig }

func (v pep440Version) Compare(other Version) int {
	return sign(v.v.Compare(other.(pep440Version).v))
}
