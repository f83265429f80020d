package python

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/textproto"
	"path"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// InstalledAnalyzer reads the core metadata of installed distributions.
type InstalledAnalyzer struct{}

// Name implements inventory.Analyzer.
func (InstalledAnalyzer) Name() string { return "python-installed" }

// Version implements inventory.Analyzer.
func (InstalledAnalyzer) Version() int { return 3 }

// MaxFileBytes implements inventory.Analyzer.
func (InstalledAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (InstalledAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isMetadata(p)
}

// Analyze implements inventory.Analyzer.
func (a InstalledAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isMetadata, ParseMetadata)
}

// isMetadata matches wheel installs (x.dist-info/METADATA), setuptools
// installs (x.egg-info/PKG-INFO, or x.egg-info as one file, as Debian
// ships many) and eggs (x.egg/EGG-INFO/PKG-INFO).
func isMetadata(p string) bool {
	dir, base := path.Split(p)
	switch base {
	case "METADATA":
		return strings.HasSuffix(dir, ".dist-info/")
	case "PKG-INFO":
		return strings.HasSuffix(dir, ".egg-info/") || strings.HasSuffix(dir, ".egg/EGG-INFO/")
	}
	return strings.HasSuffix(base, ".egg-info")
}

// maxLicenseLen tells a license name from a whole license text pasted
// into the License field, which some projects do.
const maxLicenseLen = 100

// ParseMetadata reads core metadata (PEP 241/314/345/566/643/639): email
// style headers up to the first blank line; the description body after it
// is ignored.
func ParseMetadata(data []byte, location, analyzer string) ([]inventory.Package, error) {
	headers, err := parseHeaders(data)
	if err != nil {
		return nil, err
	}
	name, version := first(headers["Name"]), first(headers["Version"])
	if name == "" || version == "" {
		return nil, errors.New("metadata has no Name or Version")
	}
	p := pkg(name, version, location, analyzer)
	p.Licenses = metadataLicenses(headers)
	return []inventory.Package{p}, nil
}

// metadataLicenses prefers the SPDX License-Expression (PEP 639), then a
// short License field, then the license classifiers.
func metadataLicenses(h map[string][]string) []string {
	if e := first(h["License-Expression"]); e != "" {
		return []string{e}
	}
	if l := first(h["License"]); l != "" && l != "UNKNOWN" && len(l) <= maxLicenseLen && !strings.Contains(l, "\n") {
		return []string{l}
	}
	var out []string
	for _, c := range h["Classifier"] {
		if rest, ok := strings.CutPrefix(c, "License :: "); ok {
			parts := strings.Split(rest, " :: ")
			out = append(out, parts[len(parts)-1])
		}
	}
	return out
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// parseHeaders reads RFC 822 style "Key: value" lines with indented
// continuation lines, up to the first blank line or the first line past
// a header that is no header. Header names are case
// insensitive (as in email, and as pip reads them); the map is keyed by
// their canonical form, "Version", "License-Expression".
func parseHeaders(data []byte) (map[string][]string, error) {
	h := map[string][]string{}
	var key string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		// Only an empty line ends the headers: a line of blanks is a
		// folded continuation (long License texts have them).
		if line == "" {
			if len(h) == 0 {
				continue
			}
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key == "" {
				return nil, fmt.Errorf("line %d: continuation line before any header", n)
			}
			vs := h[key]
			vs[len(vs)-1] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			// Past the first header, a line that is no header starts
			// the body, as Python's email parser (which pip and
			// importlib.metadata use) reads it: passlib 1.7.4 ships
			// Keywords continued on unindented lines.
			if len(h) > 0 {
				break
			}
			return nil, fmt.Errorf("line %d: not a metadata header", n)
		}
		key = textproto.CanonicalMIMEHeaderKey(k)
		h[key] = append(h[key], strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	return h, nil
}
