// Package gobinary finds the Go modules compiled into Go executables, from
// the build information the Go linker embeds in every binary since Go 1.13.
package gobinary

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime/debug"
	"strings"

	"berth.dev/berth/internal/inventory"
)

const (
	// minSize skips tiny executables (shell scripts, wrappers): the
	// smallest Go binary the toolchain produces is far larger.
	minSize = 64 << 10
	// MaxSize bounds the work spent on one file; the largest Go binaries
	// in the wild (kubelet, terraform providers) stay well below it. The
	// cargo-auditable analyzer reads up to the same size.
	MaxSize = 1 << 30
)

// Analyzer reads the build information of Go executables.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "gobinary" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 3 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return MaxSize }

// Required asks for every executable regular file of plausible size: a Go
// binary can live anywhere and have any name.
func (Analyzer) Required(_ string, info fs.FileInfo) bool {
	return IsCandidate(info)
}

// IsCandidate reports whether info describes a regular executable file
// large enough to be a compiled program (the scanner skips, with a
// warning, those past MaxSize). The cargo-auditable analyzer uses the same
// filter.
func IsCandidate(info fs.FileInfo) bool {
	m := info.Mode()
	return m.IsRegular() && m.Perm()&0o111 != 0 && info.Size() >= minSize
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	res := &inventory.Result{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := readBuildInfo(files, p)
		if err != nil {
			// Most executables are not Go programs; that is not worth a
			// warning.
			slog.Debug("no Go build info", "file", p, "err", err)
			return nil
		}
		if pkgs := packages(info, "/"+p, a.Name()); len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: p, Packages: pkgs})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gobinary: %w", err)
	}
	return res, nil
}

func readBuildInfo(files fs.FS, p string) (info *debug.BuildInfo, err error) {
	f, err := files.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("%s: file does not support random access", p)
	}
	// debug/elf, debug/pe and debug/macho are hardened but not
	// guaranteed panic-free on hostile input; one bad file must not end
	// the scan.
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("%s: parser panic: %v", p, r)
		}
	}()
	return buildinfo.Read(ra)
}

// packages turns build info into packages: the main module, every
// dependency (with replacements applied) and the standard library.
//
// The main module is kept even when its version is "(devel)", as Trivy and
// Syft do: it is the application itself, and the root that the dependency
// edges hang from. Its version then comes from a version variable set with
// -ldflags -X, as release builds do, or stays empty, because "(devel)" is
// not a version that any advisory can name.
func packages(info *debug.BuildInfo, location, analyzer string) []inventory.Package {
	if info.Main.Path == "" && len(info.Deps) == 0 && info.GoVersion == "" {
		return nil
	}
	var pkgs []inventory.Package
	add := func(name, version string) {
		pkgs = append(pkgs, inventory.Package{
			Ecosystem: inventory.Go,
			Name:      name,
			Version:   version,
			Locations: []string{location},
			Analyzer:  analyzer,
		})
	}
	var deps []string
	for _, d := range info.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		// A replacement by a local directory has no version and its path
		// is a file path, not a module: keep the module name it stands in
		// for, without a version.
		name, version := m.Path, m.Version
		if d.Replace != nil && d.Replace.Version == "" {
			name = d.Path
		}
		add(name, version)
		deps = append(deps, name)
	}
	if v := goVersion(info.GoVersion); v != "" {
		add("stdlib", v)
		deps = append(deps, "stdlib")
	}
	if info.Main.Path != "" {
		version := info.Main.Version
		if version == "(devel)" || version == "" {
			version = ldflagsVersion(info.Settings)
		}
		add(info.Main.Path, version)
		pkgs[len(pkgs)-1].DependsOn = deps
	}
	return pkgs
}

// goVersion trims build-time experiment suffixes such as
// "go1.22.1 X:boringcrypto" to the toolchain release. A development
// toolchain ("devel go1.27-1a2b3c4 …") is no release: no version.
func goVersion(v string) string {
	v, _, _ = strings.Cut(v, " ")
	if !strings.HasPrefix(v, "go1") {
		return ""
	}
	return v
}

// ldflagsVersion finds a release version stamped into the binary with
// -ldflags "-X main.version=1.2.3" (or a version variable of a version or
// build package, such as ".../internal/version.Version"). Values that do
// not start like a version ("dev", "unknown", a commit hash) are ignored.
func ldflagsVersion(settings []debug.BuildSetting) string {
	for _, s := range settings {
		if s.Key != "-ldflags" {
			continue
		}
		fields := strings.Fields(s.Value)
		for i, f := range fields {
			var assign string
			switch {
			case f == "-X" && i+1 < len(fields):
				assign = fields[i+1]
			case strings.HasPrefix(f, "-X="):
				assign = f[len("-X="):]
			default:
				continue
			}
			key, value, ok := strings.Cut(strings.Trim(assign, `'"`), "=")
			if !ok || !isVersionVar(key) || !looksLikeVersion(value) {
				continue
			}
			return value
		}
	}
	return ""
}

func isVersionVar(key string) bool {
	i := strings.LastIndex(key, ".")
	if i < 0 || !strings.EqualFold(key[i+1:], "version") {
		return false
	}
	pkg := key[:i]
	if pkg == "main" {
		return true
	}
	switch pkg[strings.LastIndex(pkg, "/")+1:] {
	case "version", "buildinfo", "build":
		return true
	}
	return false
}

func looksLikeVersion(v string) bool {
	v = strings.TrimPrefix(v, "v")
	return v != "" && v[0] >= '0' && v[0] <= '9' && strings.Contains(v, ".")
}
