package version

import (
	"fmt"
	"strings"

	rpmversion "github.com/knqyf263/go-rpm-version"
)

// rpmScheme is rpm's [epoch:]version[-release] ordering (rpmvercmp), with
// "~" sorting before and "^" after the base version.
type rpmScheme struct{}

type rpmVersion struct {
	v    rpmversion.Version
	orig string
}

func (rpmScheme) Name() string { return "rpm" }

func (rpmScheme) Parse(s string) (Version, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("%w: empty rpm version", ErrInvalid)
	}
	// The library accepts anything and reads a bad epoch as 0, which would
	// silently reorder the version: refuse it instead.
	if e, _, ok := strings.Cut(t, ":"); ok && (e == "" || strings.Trim(e, "0123456789") != "") {
		return nil, fmt.Errorf("%w: rpm version %q: epoch %q is not a number", ErrInvalid, s, e)
	}
	if !strings.ContainsAny(t, "0123456789") {
		return nil, fmt.Errorf("%w: rpm version %q has no digits", ErrInvalid, s)
	}
	return rpmVersion{v: rpmversion.NewVersion(t), orig: s}, nil
}

func (v rpmVersion) String() string { return v.orig }

func (v rpmVersion) Compare(other Version) int {
	return sign(v.v.Compare(other.(rpmVersion).v))
}
