package version

import (
	"fmt"
	"strings"

	gemversion "github.com/aquasecurity/go-gem-version"
)

// gemScheme is RubyGems' Gem::Version ordering: segments split at "." and
// digit/letter transitions, a letter segment makes the version a
// pre-release that sorts before the release ("1.0.a" < "1.0"), "-" reads as
// ".pre.", and trailing zeros are ignored.
type gemScheme struct{}

type gemVersion struct {
	v    gemversion.Version
	orig string
}

func (gemScheme) Name() string { return "gem" }

func (gemScheme) Parse(s string) (Version, error) {
	// The library reads a blank string as "0"; a missing version is not 0.
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty RubyGems version", ErrInvalid)
	}
	v, err := gemversion.NewVersion(s)
	if err != nil {
		return nil, fmt.Errorf("%w: RubyGems version %q: %v", ErrInvalid, s, err)
	}
	return gemVersion{v: v, orig: s}, nil
}

func (v gemVersion) String() string { return v.orig }

func (v gemVersion) Compare(other Version) int {
	return sign(v.v.Compare(other.(gemVersion).v))
}
