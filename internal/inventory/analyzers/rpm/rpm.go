// Package rpm reads the rpm package database in all three of its formats:
// SQLite (Fedora, RHEL 9+), ndb (SUSE) and Berkeley DB (RHEL 7/8, Amazon
// Linux 2), through the pure-Go readers of knqyf263/go-rpmdb, and decodes
// the package headers itself (header.go).
package rpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/knqyf263/go-rpmdb/pkg/bdb"
	dbi "github.com/knqyf263/go-rpmdb/pkg/db"
	"github.com/knqyf263/go-rpmdb/pkg/ndb"
	"github.com/knqyf263/go-rpmdb/pkg/sqlite3"

	// go-rpmdb opens SQLite databases through database/sql as "sqlite".
	_ "modernc.org/sqlite"

	"berth.dev/berth/internal/inventory"
)

// The database file names, in the two places distributions keep them.
var dbFiles = []string{
	"var/lib/rpm/Packages",    // Berkeley DB
	"var/lib/rpm/Packages.db", // ndb
	"var/lib/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/Packages",
	"usr/lib/sysimage/rpm/Packages.db",
	"usr/lib/sysimage/rpm/rpmdb.sqlite",
}

// Analyzer reads rpm databases.
type Analyzer struct{}

func (Analyzer) Name() string { return "rpm" }
func (Analyzer) Version() int { return 3 }

// MaxFileBytes implements inventory.Analyzer: the database of a large
// server install is a few hundred MiB; a container's, tens.
func (Analyzer) MaxFileBytes() int64 { return 512 << 20 }

// FixedPaths implements inventory.FixedPathAnalyzer.
func (Analyzer) FixedPaths() []string { return dbFiles }

func (Analyzer) Required(p string, _ fs.FileInfo) bool {
	if !strings.HasSuffix(p, "Packages") && !strings.HasSuffix(p, "Packages.db") && !strings.HasSuffix(p, "rpmdb.sqlite") {
		return false
	}
	return slices.Contains(dbFiles, p)
}

func (Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	res := &inventory.Result{}
	for _, name := range dbFiles {
		f, err := files.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open /%s: %w", name, err)
		}
		pkgs, warns, err := readDB(ctx, f, "/"+name)
		f.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			res.Warns = append(res.Warns, fmt.Sprintf("/%s: %v", name, err))
			continue
		}
		res.Warns = append(res.Warns, warns...)
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: name, Packages: pkgs})
		}
	}
	return res, nil
}

// maxHeaderWarnings bounds the warnings one database can produce: a
// database damaged throughout would otherwise give one per package.
const maxHeaderWarnings = 10

// readDB copies the database to a temporary file, since go-rpmdb (and
// SQLite under it) open databases by path, checks its structure, and reads
// every header blob. A header that does not parse costs that package (a
// warning), not the database; err is set only when nothing could be read.
func readDB(ctx context.Context, src io.Reader, location string) (pkgs []inventory.Package, warns []string, err error) {
	tmp, err := os.CreateTemp("", "berth-rpmdb-*")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(tmp.Name())
	size, err := io.Copy(tmp, src)
	var format dbFormat
	if err == nil {
		format, err = checkStructure(tmp, size)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	db, err := openDB(format, tmp.Name())
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	defer db.Close()

	var problems []string
	skipped := 0
	problem := func(format string, args ...any) {
		if len(problems) < maxHeaderWarnings {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else {
			skipped++
		}
	}
	entry := 0
	// The reader goroutine sends until the database ends and blocks
	// forever on a channel nobody reads, holding the file: always drain
	// it, whatever goes wrong on this side.
	for e := range db.Read() {
		entry++
		if ctx.Err() != nil {
			continue
		}
		if e.Err != nil {
			problem("entry %d: %v", entry, e.Err)
			continue
		}
		h, err := parseHeader(e.Value)
		if err != nil {
			problem("entry %d: %v", entry, err)
			continue
		}
		// gpg-pubkey entries are the signing keys rpm trusts. They are
		// listed, as `rpm -qa`, go-rpmdb and Trivy list them (the
		// matcher leaves them out), since which keys an image trusts
		// is part of what it holds.
		if h.name == "" {
			continue
		}
		pkgs = append(pkgs, toPackage(h, location))
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if skipped > 0 {
		problems = append(problems, fmt.Sprintf("%d more entries skipped", skipped))
	}
	if len(pkgs) == 0 && len(problems) > 0 {
		return nil, nil, fmt.Errorf("%w: %s", errCorrupt, strings.Join(problems, "; "))
	}
	for _, p := range problems {
		warns = append(warns, fmt.Sprintf("%s: %s; skipped", location, p))
	}
	return pkgs, warns, nil
}

// openDB opens the database with go-rpmdb's reader for its format. Only
// the raw readers are used: see parseHeader.
func openDB(format dbFormat, path string) (dbi.RpmDBInterface, error) {
	switch format {
	case formatSQLite:
		return sqlite3.Open(path)
	case formatNDB:
		return ndb.Open(path)
	default:
		return bdb.Open(path)
	}
}

func toPackage(h header, location string) inventory.Package {
	version := evr(h.epoch, h.version, h.release)
	srcName, srcVersion := h.name, version
	if n, v, ok := parseSourceRPM(h.sourceRPM); ok {
		srcName, srcVersion = n, evr(h.epoch, "", v)
	}
	p := inventory.Package{
		Ecosystem:     inventory.RPM,
		Name:          h.name,
		Version:       version,
		SourceName:    srcName,
		SourceVersion: srcVersion,
		Arch:          h.arch,
		Locations:     []string{location},
		Analyzer:      "rpm",
	}
	if h.license != "" {
		p.Licenses = []string{h.license}
	}
	return p
}

// evr writes [epoch:]version-release, the form rpm compares; epoch 0 and
// no epoch are the same to rpm and are left out.
func evr(epoch *int, version, release string) string {
	v := version
	if release != "" {
		if v != "" {
			v += "-"
		}
		v += release
	}
	if epoch != nil && *epoch != 0 {
		v = strconv.Itoa(*epoch) + ":" + v
	}
	return v
}

// parseSourceRPM splits "openssl-3.0.7-27.el9.src.rpm" into "openssl" and
// "3.0.7-27.el9": the last two dash-separated fields are version and
// release.
func parseSourceRPM(s string) (name, versionRelease string, ok bool) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, ".rpm"), ".src")
	s = strings.TrimSuffix(s, ".nosrc")
	rel := strings.LastIndex(s, "-")
	if rel <= 0 {
		return "", "", false
	}
	ver := strings.LastIndex(s[:rel], "-")
	if ver <= 0 {
		return "", "", false
	}
	return s[:ver], s[ver+1:], true
}
