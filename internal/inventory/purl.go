package inventory

import (
	"regexp"
	"strings"
	"sync"

	"github.com/package-url/packageurl-go"

	"berth.dev/berth/internal/match/version"
)

// PURL returns the package URL of p, following the purl-spec type
// definitions (https://github.com/package-url/purl-spec): OS packages get
// their distro as namespace and "distro" qualifier (syft's and Trivy's
// form, "debian-12", "alpine-3.19.1"), plus "upstream" naming the source
// package when it differs from the binary one. d may be nil.
func PURL(p Package, d *Distro) string {
	var (
		namespace, name = "", p.Name
		ver             = p.Version
		q               = packageurl.Qualifiers{}
	)
	add := func(k, v string) {
		if v != "" {
			q = append(q, packageurl.Qualifier{Key: k, Value: v})
		}
	}
	switch p.Ecosystem {
	case Deb, APK, RPM:
		namespace = osNamespace(p.Ecosystem, d)
		if p.Ecosystem != RPM {
			name = strings.ToLower(name)
		}
		add("arch", p.Arch)
		if d != nil && d.ID != "" && d.VersionID != "" {
			add("distro", d.ID+"-"+d.VersionID)
		}
		if p.Ecosystem == RPM {
			if epoch, rest, ok := strings.Cut(ver, ":"); ok && isDigits(epoch) {
				ver = rest
				if epoch != "0" {
					add("epoch", epoch)
				}
			}
		}
		add("upstream", upstream(p))
	case Go, Composer:
		// The toolchain's version is written as the Go vulnerability
		// database (and so OSV, osv-scanner and osv.dev's purl queries)
		// writes stdlib versions, as syft does: go1.26.8 is 1.26.8,
		// go1.20 is 1.20.0, go1.21rc2 is 1.21.0-rc.2.
		if p.Ecosystem == Go && name == "stdlib" {
			if v, ok := version.GoReleaseToSemver(p.Version); ok {
				ver = v
			}
		}
		// Module paths and composer names carry their namespace in the name.
		if i := strings.LastIndex(name, "/"); i > 0 {
			namespace, name = name[:i], name[i+1:]
		}
		if p.Ecosystem == Composer {
			namespace, name = strings.ToLower(namespace), strings.ToLower(name)
		}
	case NPM:
		if strings.HasPrefix(name, "@") {
			if i := strings.Index(name, "/"); i > 0 {
				namespace, name = name[:i], name[i+1:]
			}
		}
	case PyPI:
		name = normalizePyPI(name)
	case Maven:
		if group, artifact, ok := strings.Cut(name, ":"); ok {
			namespace, name = group, artifact
		}
	}
	return packageurl.NewPackageURL(string(p.Ecosystem), namespace, name, ver, q, "").ToString()
}

// osNamespace is the distro vendor: the os-release ID when known, else the
// distribution the package format implies.
func osNamespace(eco Ecosystem, d *Distro) string {
	if d != nil && d.ID != "" {
		return strings.ToLower(d.ID)
	}
	switch eco {
	case Deb:
		return "debian"
	case APK:
		return "alpine"
	}
	return ""
}

// upstream names the source package when it differs from the binary one:
// "glibc" for libc6, "bash@5.2.15-2" for a binNMU of bash 5.2.15-2+b13.
func upstream(p Package) string {
	if p.SourceName == "" || (p.SourceName == p.Name && (p.SourceVersion == "" || p.SourceVersion == p.Version)) {
		return ""
	}
	if p.SourceVersion != "" && p.SourceVersion != p.Version {
		return p.SourceName + "@" + p.SourceVersion
	}
	return p.SourceName
}

var pypiSeparators = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[-_.]+`) })

// normalizePyPI is PEP 503 name normalisation, which the pypi purl type
// asks for: lower case, runs of "-", "_" and "." become one "-".
func normalizePyPI(name string) string {
	return pypiSeparators().ReplaceAllString(strings.ToLower(name), "-")
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
