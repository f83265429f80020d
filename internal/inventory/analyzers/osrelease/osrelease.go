// Package osrelease identifies the distribution of an image from
// os-release(5), falling back to the distributions' own version files
// (etc/alpine-release, etc/debian_version, etc/redhat-release) when an image
// carries no os-release.
package osrelease

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"berth.dev/berth/internal/inventory"
)

// Analyzer reads os-release and the distro version files.
type Analyzer struct{}

// The files in order of preference: the first one present that yields an
// ID wins.
const (
	etcOSRelease    = "etc/os-release"
	usrOSRelease    = "usr/lib/os-release"
	alpineRelease   = "etc/alpine-release"
	debianVersion   = "etc/debian_version"
	redhatRelease   = "etc/redhat-release"
	maxReleaseBytes = 64 << 10
)

func (Analyzer) Name() string { return "os-release" }
func (Analyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer: a real os-release is a few
// hundred bytes.
func (Analyzer) MaxFileBytes() int64 { return maxReleaseBytes }

// FixedPaths implements inventory.FixedPathAnalyzer: os-release only.
// The fallbacks are read with it in one layer (etc/redhat-release is a
// symlink to fedora-release and the like on every RHEL-family image, and
// means something only without os-release).
func (Analyzer) FixedPaths() []string { return []string{etcOSRelease, usrOSRelease} }

func (Analyzer) Required(path string, _ fs.FileInfo) bool {
	switch path {
	case etcOSRelease, usrOSRelease, alpineRelease, debianVersion, redhatRelease:
		return true
	}
	return false
}

func (Analyzer) Analyze(_ context.Context, files fs.FS) (*inventory.Result, error) {
	res := &inventory.Result{}
	for _, name := range []string{etcOSRelease, usrOSRelease} {
		data, err := readIfPresent(files, name)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		d := ParseOSRelease(data)
		if d.ID == "" {
			res.Warns = append(res.Warns, fmt.Sprintf("/%s: no ID= line", name))
			continue
		}
		res.Distro = d
		return res, nil
	}
	fallbacks := []struct {
		name  string
		parse func([]byte) *inventory.Distro
	}{
		{alpineRelease, parseAlpineRelease},
		{debianVersion, parseDebianVersion},
		{redhatRelease, parseRedHatRelease},
	}
	for _, fb := range fallbacks {
		data, err := readIfPresent(files, fb.name)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		if d := fb.parse(data); d != nil {
			res.Distro = d
			return res, nil
		}
		res.Warns = append(res.Warns, fmt.Sprintf("/%s: unrecognised contents", fb.name))
	}
	return res, nil
}

func readIfPresent(files fs.FS, name string) ([]byte, error) {
	data, err := fs.ReadFile(files, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read /%s: %w", name, err)
	}
	return data, nil
}

// ParseOSRelease reads the KEY=value lines of an os-release file. Values may
// be quoted with single or double quotes, with shell escapes inside double
// quotes, as os-release(5) allows.
func ParseOSRelease(data []byte) *inventory.Distro {
	d := &inventory.Distro{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		val = unquote(val)
		switch key {
		case "ID":
			d.ID = val
		case "VERSION_ID":
			d.VersionID = val
		case "VERSION_CODENAME":
			d.Codename = val
		case "PRETTY_NAME":
			d.PrettyName = val
		}
	}
	return d
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		if v[0] == '"' {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
		}
		return v[1 : len(v)-1]
	}
	return v
}

func parseAlpineRelease(data []byte) *inventory.Distro {
	v := strings.TrimSpace(string(data))
	if v == "" || strings.ContainsAny(v, " \n") {
		return nil
	}
	return &inventory.Distro{ID: "alpine", VersionID: v}
}

// parseDebianVersion reads etc/debian_version: "12.5" on a release, a
// codename such as "trixie/sid" on testing. os-release's VERSION_ID is the
// major version only, so that is what we keep.
func parseDebianVersion(data []byte) *inventory.Distro {
	v := strings.TrimSpace(string(data))
	if v == "" || strings.ContainsAny(v, " \n") {
		return nil
	}
	d := &inventory.Distro{ID: "debian"}
	if major, _, _ := strings.Cut(v, "."); major != "" && isDigits(major) {
		d.VersionID = major
	} else {
		d.Codename, _, _ = strings.Cut(v, "/")
	}
	return d
}

var redhatReleaseRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(.+?) release (\d+(?:\.\d+)*)`) })

// parseRedHatRelease reads "Red Hat Enterprise Linux release 9.4 (Plow)",
// "CentOS Linux release 7.9.2009 (Core)", "Fedora release 39 (Thirty Nine)".
func parseRedHatRelease(data []byte) *inventory.Distro {
	m := redhatReleaseRE().FindStringSubmatch(strings.TrimSpace(string(data)))
	if m == nil {
		return nil
	}
	name := strings.ToLower(m[1])
	var id string
	switch {
	case strings.HasPrefix(name, "red hat"):
		id = "rhel"
	case strings.HasPrefix(name, "centos"):
		id = "centos"
	case strings.HasPrefix(name, "fedora"):
		id = "fedora"
	case strings.HasPrefix(name, "rocky"):
		id = "rocky"
	case strings.HasPrefix(name, "almalinux"):
		id = "almalinux"
	default:
		return nil
	}
	return &inventory.Distro{ID: id, VersionID: m[2], PrettyName: strings.TrimSpace(string(data))}
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
