package python

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"berth.dev/berth/internal/inventory"
)

// RequirementsAnalyzer reads pip requirements files (requirements.txt,
// requirements-dev.txt, requirements/*.txt …). Only exactly pinned lines
// ("name==1.2.3") name a version, so only those become packages; ranges,
// URLs, editable installs and options are skipped.
type RequirementsAnalyzer struct{}

// Name implements inventory.Analyzer.
func (RequirementsAnalyzer) Name() string { return "pip-requirements" }

// Version implements inventory.Analyzer.
func (RequirementsAnalyzer) Version() int { return 1 }

// MaxFileBytes implements inventory.Analyzer.
func (RequirementsAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (RequirementsAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isRequirements(p)
}

// Analyze implements inventory.Analyzer.
func (a RequirementsAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isRequirements, ParseRequirements)
}

func isRequirements(p string) bool {
	base := path.Base(p)
	if !strings.HasSuffix(base, ".txt") {
		return false
	}
	return strings.HasPrefix(base, "requirements") || path.Base(path.Dir(p)) == "requirements"
}

// ParseRequirements reads the pinned requirements of a pip requirements
// file. Lines it does not understand are not errors: the format allows far
// more than pins, and none of it names an installed version.
func ParseRequirements(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var pkgs []inventory.Package
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var logical strings.Builder
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		// A trailing backslash joins the next line (hash lists).
		if strings.HasSuffix(line, `\`) {
			logical.WriteString(strings.TrimSuffix(line, `\`))
			logical.WriteByte(' ')
			continue
		}
		logical.WriteString(line)
		if name, version, ok := pinned(logical.String()); ok {
			pkgs = append(pkgs, pkg(name, version, location, analyzer))
		}
		logical.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read requirements: %w", err)
	}
	return pkgs, nil
}

// pinned returns the name and version of a "name[extras]==version ; marker
// --hash=…" line.
func pinned(line string) (name, version string, ok bool) {
	// " #" starts a comment; "#" inside a URL fragment does not, but URL
	// lines are not pins anyway.
	if i := strings.Index(line, "#"); i >= 0 {
		line = line[:i]
	}
	line, _, _ = strings.Cut(line, ";")
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "-") {
		return "", "", false
	}
	name, rest, ok := strings.Cut(line, "==")
	if !ok || strings.HasPrefix(rest, "=") { // "===" is arbitrary equality
		return "", "", false
	}
	name, _, _ = strings.Cut(name, "[")
	name = strings.TrimSpace(name)
	fields := strings.Fields(rest)
	if len(fields) == 0 || name == "" || strings.ContainsAny(name, " <>!~=@/:") {
		return "", "", false
	}
	version = fields[0]
	if strings.ContainsAny(version, "*,<>!~") { // "==1.*" is a range
		return "", "", false
	}
	return name, version, true
}
