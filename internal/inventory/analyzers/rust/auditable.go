package rust

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"

	"berth.dev/berth/internal/inventory"
)

const (
	// sectionName is where cargo-auditable puts its data. Only ELF is
	// read: container images hold Linux binaries.
	sectionName = ".dep-v0"
	// minBinarySize skips scripts and other tiny executables; the
	// smallest Rust program with cargo-auditable data is far larger. It
	// matches the Go binary analyzer's bound, so both want the same files.
	minBinarySize = 64 << 10
	maxBinarySize = 1 << 30
	// maxAuditData bounds the inflated JSON: real data is a few KiB per
	// hundred crates.
	maxAuditData = 8 << 20
)

// AuditableAnalyzer reads the dependency list cargo-auditable embeds in
// Rust executables.
type AuditableAnalyzer struct{}

// Name implements inventory.Analyzer.
func (AuditableAnalyzer) Name() string { return "cargo-auditable" }

// Version implements inventory.Analyzer.
func (AuditableAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (AuditableAnalyzer) MaxFileBytes() int64 { return maxBinarySize }

// Required asks for every executable regular file large enough to be a
// program, like the Go binary analyzer: a binary can have any name.
func (AuditableAnalyzer) Required(_ string, info fs.FileInfo) bool {
	m := info.Mode()
	return m.IsRegular() && m.Perm()&0o111 != 0 && info.Size() >= minBinarySize
}

// errNoAuditData marks executables without the section: most of them.
var errNoAuditData = errors.New("no cargo-auditable data")

// Analyze implements inventory.Analyzer.
func (a AuditableAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
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
		pkgs, err := readAuditable(files, p, a.Name())
		switch {
		case errors.Is(err, errNoAuditData):
		case err != nil:
			res.Warns = append(res.Warns, fmt.Sprintf("/%s: %v", p, err))
		case len(pkgs) > 0:
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: p, Packages: pkgs})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cargo-auditable: %w", err)
	}
	return res, nil
}

func readAuditable(files fs.FS, p, analyzer string) (pkgs []inventory.Package, err error) {
	f, err := files.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, errors.New("file does not support random access")
	}
	// debug/elf and debug/pe are not guaranteed panic-free on hostile
	// input; one bad file must not end the scan.
	defer func() {
		if r := recover(); r != nil {
			pkgs, err = nil, fmt.Errorf("executable parser panic: %v", r)
		}
	}()
	section, err := auditSection(ra)
	if err != nil {
		return nil, err
	}
	zr, err := zlib.NewReader(section)
	if err != nil {
		return nil, fmt.Errorf("inflate %s: %w", sectionName, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxAuditData+1))
	if err != nil {
		return nil, fmt.Errorf("inflate %s: %w", sectionName, err)
	}
	if len(data) > maxAuditData {
		return nil, fmt.Errorf("%s inflates past %d bytes", sectionName, maxAuditData)
	}
	return ParseAuditData(data, "/"+p, analyzer)
}

// auditSection finds the section in an ELF file. Anything else (or an
// executable without it) is errNoAuditData.
func auditSection(ra io.ReaderAt) (io.Reader, error) {
	var magic [4]byte
	if _, err := ra.ReadAt(magic[:], 0); err != nil {
		return nil, errNoAuditData
	}
	if !bytes.Equal(magic[:], []byte(elf.ELFMAG)) {
		return nil, errNoAuditData
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		return nil, errNoAuditData
	}
	if s := ef.Section(sectionName); s != nil && s.Type != elf.SHT_NOBITS {
		return s.Open(), nil
	}
	return nil, errNoAuditData
}

// ParseAuditData reads cargo-auditable's JSON: {"packages": [{"name",
// "version", "source", "kind", "dependencies": [indices], "root"}]}.
func ParseAuditData(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var info struct {
		Packages []struct {
			Name         string `json:"name"`
			Version      string `json:"version"`
			Dependencies []int  `json:"dependencies"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("parse %s: %w", sectionName, err)
	}
	var pkgs []inventory.Package
	for i, e := range info.Packages {
		if e.Name == "" || e.Version == "" {
			return nil, fmt.Errorf("%s: package %d has no name or version", sectionName, i)
		}
		p := pkg(e.Name, e.Version, location, analyzer)
		var deps []string
		for _, d := range e.Dependencies {
			if d < 0 || d >= len(info.Packages) {
				return nil, fmt.Errorf("%s: package %q depends on index %d of %d", sectionName, e.Name, d, len(info.Packages))
			}
			deps = append(deps, info.Packages[d].Name)
		}
		if len(deps) > 0 {
			sort.Strings(deps)
			p.DependsOn = slices.Compact(deps)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}
