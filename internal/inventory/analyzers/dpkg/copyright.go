package dpkg

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

const (
	docDir        = "usr/share/doc/"
	copyrightName = "/copyright"
	// maxCopyrightBytes skips the rare huge copyright files (whole license
	// texts of vendored trees); the License: lines of a real one fit well
	// within it.
	maxCopyrightBytes = 1 << 20
)

// copyrightPackage returns the package a usr/share/doc/NAME/copyright path
// belongs to, or false for any other path.
func copyrightPackage(p string) (string, bool) {
	if len(p) <= len(docDir)+len(copyrightName) || !strings.HasPrefix(p, docDir) || !strings.HasSuffix(p, copyrightName) {
		return "", false
	}
	name := p[len(docDir) : len(p)-len(copyrightName)]
	if name == "" || strings.Contains(name, "/") {
		return "", false
	}
	return name, true
}

var (
	machineReadable = []byte("copyright-format/1.0")
	commonLicense   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`/usr/share/common-licenses/([A-Za-z][A-Za-z0-9+_.-]*[A-Za-z0-9+])`)
	})
)

// ParseCopyright lists the licenses a Debian copyright file names, as the
// file writes them (short names such as "GPL-2+" or "LGPL-3+ or GPL-2+";
// the SBOM encoders map them to SPDX where they can). A machine-readable
// file (copyright-format 1.0) is read for its License: fields; any other
// is searched for references to /usr/share/common-licenses.
func ParseCopyright(data []byte) []string {
	var out []string
	add := func(l string) {
		l = strings.TrimSpace(l)
		if l != "" && !containsFold(out, l) {
			out = append(out, l)
		}
	}
	if bytes.Contains(firstLine(data), machineReadable) {
		for len(data) > 0 {
			var line []byte
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				line, data = data, nil
			}
			if v, ok := bytes.CutPrefix(line, []byte("License:")); ok {
				add(string(v))
			}
		}
		return out
	}
	for _, m := range commonLicense().FindAllSubmatch(data, -1) {
		add(string(m[1]))
	}
	return out
}

func firstLine(data []byte) []byte {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i]
	}
	return data
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}
