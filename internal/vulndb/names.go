package vulndb

import "strings"

// Key is where a package's records are indexed: the ecosystem as OSV writes
// it (with its release, "Debian:12") and the package name, both normalised
// the same way at import and at lookup.
func Key(ecosystem, name string) string {
	eco := NormalizeEcosystem(ecosystem)
	return eco + "\x00" + NormalizeName(eco, name)
}

// NormalizeEcosystem trims an ecosystem string and drops the ":LTS" tail
// osv.dev puts on Ubuntu releases ("Ubuntu:22.04:LTS"), which an image's
// os-release never carries.
func NormalizeEcosystem(eco string) string {
	eco = strings.TrimSpace(eco)
	if strings.HasPrefix(eco, "Ubuntu:") {
		eco = strings.TrimSuffix(eco, ":LTS")
	}
	return eco
}

// NormalizeName returns the form a package name is indexed under: PEP 503 for
// PyPI, lower case where the ecosystem compares names without case (NuGet,
// Packagist), the name as given elsewhere.
func NormalizeName(eco, name string) string {
	name = strings.TrimSpace(name)
	switch eco {
	case "PyPI":
		return pep503(name)
	case "NuGet", "Packagist":
		return strings.ToLower(name)
	}
	return name
}

// pep503 lower-cases a name and folds every run of '-', '_' and '.' into a
// single '-'.
func pep503(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep {
			b.WriteByte('-')
			sep = false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	if sep {
		b.WriteByte('-')
	}
	return b.String()
}
