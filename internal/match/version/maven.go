package version

import (
	"fmt"
	"strings"

	mvnversion "github.com/masahiro331/go-mvn-version"
)

// mavenScheme is Maven's ComparableVersion ordering: items split at ".",
// "-" and digit/letter transitions; qualifiers alpha < beta < milestone <
// rc = cr < snapshot < (release, "ga", "final") < sp, unknown qualifiers
// after sp in lexical order; trailing zero items ignored (1.0 == 1).
type mavenScheme struct{}

type mavenVersion struct{ v mvnversion.Version }

func (mavenScheme) Name() string { return "maven" }

func (mavenScheme) Parse(s string) (Version, error) {
	t := strings.TrimSpace(s)
	// ComparableVersion reads any string; one without a digit is a label,
	// not a version, and ordering it would be a guess.
	if !strings.ContainsAny(t, "0123456789") {
		return nil, fmt.Errorf("%w: Maven version %q has no digits", ErrInvalid, s)
	}
	v, err := mvnversion.NewVersion(t)
	if err != nil {
		return nil, fmt.Errorf("%w: Maven version %q: %v", ErrInvalid, s, err)
	}
	return mavenVersion{v}, nil
}

func (v mavenVersion) String() string { return v.v.String() }

func (v mavenVersion) Compare(other Version) int {
	return sign(v.v.Compare(other.(mavenVersion).v))
}
