// Package gradle reads Gradle's dependency lockfiles: gradle.lockfile
// (Gradle 6.8+, one file per project), buildscript-gradle.lockfile, and
// the older one-file-per-configuration gradle/dependency-locks/*.lockfile.
package gradle

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

// Analyzer reads Gradle lockfiles.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "gradle-lockfile" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 2 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required implements inventory.Analyzer.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isLockfile(p)
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	return inventory.AnalyzeFiles(ctx, files, a.Name(), isLockfile, Parse)
}

func isLockfile(p string) bool {
	base := path.Base(p)
	if base == "gradle.lockfile" || base == "buildscript-gradle.lockfile" {
		return true
	}
	return strings.HasSuffix(base, ".lockfile") && strings.HasSuffix(path.Dir(p), "gradle/dependency-locks")
}

// Parse reads "group:artifact:version=configuration,configuration" lines;
// comments and the "empty=" line (configurations that resolve nothing)
// are skipped. A dependency locked only in test configurations is dev. A
// line that is no coordinate (a merge conflict marker left in the file) is
// skipped and named in the error; the other lines are still read.
func Parse(data []byte, location, analyzer string) ([]inventory.Package, error) {
	var pkgs []inventory.Package
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	firstBad, bad := 0, 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "empty=") {
			continue
		}
		coord, confs, _ := strings.Cut(line, "=")
		parts := strings.Split(coord, ":")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			if bad++; firstBad == 0 {
				firstBad = n
			}
			continue
		}
		name := parts[0] + ":" + parts[1]
		dev := confs != ""
		for c := range strings.SplitSeq(confs, ",") {
			if !strings.HasPrefix(strings.TrimSpace(c), "test") {
				dev = false
			}
		}
		key := name + "@" + parts[2]
		if i, ok := seen[key]; ok {
			pkgs[i].Dev = pkgs[i].Dev && dev
			continue
		}
		seen[key] = len(pkgs)
		pkgs = append(pkgs, inventory.Package{
			Ecosystem: inventory.Maven, Name: name, Version: parts[2],
			Locations: []string{location}, Analyzer: analyzer, Dev: dev,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read gradle lockfile: %w", err)
	}
	switch {
	case bad == 1:
		return pkgs, fmt.Errorf("line %d: want group:artifact:version", firstBad)
	case bad > 1:
		return pkgs, fmt.Errorf("line %d and %d more: want group:artifact:version", firstBad, bad-1)
	}
	return pkgs, nil
}
