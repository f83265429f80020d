// Package rpm reads the rpm package database in all three of its formats:
// SQLite (Fedora, RHEL 9+), ndb (SUSE) and Berkeley DB (RHEL 7/8, Amazon
// Linux 2), through knqyf263/go-rpmdb, which is pure Go.
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

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
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
func (Analyzer) Version() int { return 1 }

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
		pkgs, err := readDB(f, "/"+name)
		f.Close()
		if err != nil {
			res.Warns = append(res.Warns, fmt.Sprintf("/%s: %v", name, err))
			continue
		}
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: name, Packages: pkgs})
		}
	}
	return res, nil
}

// readDB copies the database to a temporary file, since go-rpmdb (and
// SQLite under it) open databases by path, and checks its structure
// before the library reads it.
func readDB(src io.Reader, location string) (pkgs []inventory.Package, err error) {
	tmp, err := os.CreateTemp("", "berth-rpmdb-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	size, err := io.Copy(tmp, src)
	if err == nil {
		err = checkStructure(tmp, size, tmp.Name())
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// Header blobs are parsed on this goroutine; a malformed one must cost
	// this database, not the scan.
	defer func() {
		if r := recover(); r != nil {
			pkgs, err = nil, fmt.Errorf("%w: %v", errCorrupt, r)
		}
	}()
	db, err := rpmdb.Open(tmp.Name())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	infos, err := db.ListPackages()
	if err != nil {
		return nil, fmt.Errorf("list packages: %w", err)
	}
	pkgs = make([]inventory.Package, 0, len(infos))
	for _, pi := range infos {
		// gpg-pubkey entries are imported signing keys, not packages.
		if pi.Name == "gpg-pubkey" || pi.Name == "" {
			continue
		}
		version := evr(pi.Epoch, pi.Version, pi.Release)
		srcName, srcVersion := pi.Name, version
		if n, v, ok := parseSourceRPM(pi.SourceRpm); ok {
			srcName, srcVersion = n, evr(pi.Epoch, "", v)
		}
		p := inventory.Package{
			Ecosystem:     inventory.RPM,
			Name:          pi.Name,
			Version:       version,
			SourceName:    srcName,
			SourceVersion: srcVersion,
			Arch:          pi.Arch,
			Locations:     []string{location},
			Analyzer:      "rpm",
		}
		if pi.License != "" {
			p.Licenses = []string{pi.License}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
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
