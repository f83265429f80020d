// Package alpine reads the Alpine secdb in its JSON form,
// <base>/<branch>/<repo>.json, where each package lists
// secfixes {"<fixed version>": ["CVE-…", …]}. Every identifier becomes one OSV
// record, id ALPINE-<identifier> as osv.dev names them, with one affected
// entry per branch and package: ecosystem "Alpine:<branch>", range ECOSYSTEM
// introduced 0 fixed <version>. A fixed version of "0" means the package was
// never affected, so it yields no entry.
//
// Branches are the subfolders of a local base, or the v<major>.<minor>/ and
// edge/ links of the index page a remote base serves (secdb.alpinelinux.org
// is a plain directory listing).
package alpine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
)

// DefaultBase is where Alpine publishes the secdb.
const DefaultBase = "https://secdb.alpinelinux.org"

var repos = []string{"main", "community"}

// Source is the secdb at Base (a URL or a local folder).
type Source struct{ Base string }

// New returns the secdb at base.
func New(base string) *Source { return &Source{Base: base} }

// Name implements source.Source.
func (s *Source) Name() string { return "alpine-secdb " + s.Base }

// Load implements source.Source.
func (s *Source) Load(ctx context.Context, f source.Fetcher, sink source.Sink) error {
	branches, err := s.branches(ctx, f)
	if err != nil {
		return err
	}
	var dbs []*SecDB
	for _, br := range branches {
		for _, repo := range repos {
			p, err := f.Fetch(ctx, source.Join(s.Base, br, repo+".json"))
			if errors.Is(err, source.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("alpine secdb: %w", err)
			}
			db, err := parseFile(p)
			if err != nil {
				return fmt.Errorf("alpine secdb %s/%s.json: %w", br, repo, err)
			}
			if db.DistroVersion == "" {
				db.DistroVersion = br
			}
			dbs = append(dbs, db)
		}
	}
	return Convert(dbs, sink)
}

// Convert turns secdb documents into OSV records, one per identifier across
// all of them, and hands them to sink.
func Convert(dbs []*SecDB, sink source.Sink) error {
	agg := newAggregator()
	for _, db := range dbs {
		agg.add(db, sink)
	}
	return agg.emit(sink)
}

var branchRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`href="(v\d+\.\d+|edge)/?"`) })

func (s *Source) branches(ctx context.Context, f source.Fetcher) ([]string, error) {
	var out []string
	if source.IsRemote(s.Base) {
		p, err := f.Fetch(ctx, strings.TrimRight(s.Base, "/")+"/")
		if err != nil {
			return nil, fmt.Errorf("alpine secdb index: %w", err)
		}
		page, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		for _, m := range branchRe().FindAllStringSubmatch(string(page), -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	} else {
		entries, err := os.ReadDir(source.LocalPath(s.Base))
		if err != nil {
			return nil, fmt.Errorf("alpine secdb: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				out = append(out, e.Name())
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("alpine secdb %s: no branches found", s.Base)
	}
	sort.Strings(out)
	return out, nil
}

// SecDB is one <branch>/<repo>.json document.
type SecDB struct {
	DistroVersion string    `json:"distroversion"`
	RepoName      string    `json:"reponame"`
	Packages      []Package `json:"packages"`
}

// Package is one entry of SecDB.Packages.
type Package struct {
	Pkg struct {
		Name     string              `json:"name"`
		SecFixes map[string][]string `json:"secfixes"`
	} `json:"pkg"`
}

func parseFile(p string) (*SecDB, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return Parse(fh)
}

// maxDocument bounds one secdb file; the largest real ones are about 1 MiB.
const maxDocument = 64 << 20

// Parse decodes one secdb JSON document. "packages": null is an empty
// branch (upstream writes it so); a document with none of the secdb fields
// is not a secdb document.
func Parse(r io.Reader) (*SecDB, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDocument+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDocument {
		return nil, fmt.Errorf("secdb document larger than %d bytes", maxDocument)
	}
	var db SecDB
	if err := json.Unmarshal(b, &db); err != nil {
		return nil, fmt.Errorf("not a secdb JSON document: %w", err)
	}
	if db.DistroVersion == "" && db.RepoName == "" && db.Packages == nil {
		return nil, errors.New("not a secdb JSON document: no distroversion, reponame or packages")
	}
	return &db, nil
}

// aggregator gathers every identifier across branches and repos into one
// record, so ALPINE-CVE-x holds all the branches it was fixed in.
type aggregator struct{ byID map[string]*osv.Vulnerability }

func newAggregator() *aggregator { return &aggregator{byID: map[string]*osv.Vulnerability{}} }

var (
	// "CVE 2018-16859" and "CVE_2019-2426" occur upstream for CVE-….
	cveSloppyRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)\bCVE[ _](\d{4}-\d{4,})\b`) })
	identRe     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)+$`) })
)

func (a *aggregator) add(db *SecDB, sink source.Sink) {
	eco := "Alpine:" + db.DistroVersion
	for _, p := range db.Packages {
		name := strings.TrimSpace(p.Pkg.Name)
		if name == "" {
			sink.Skip(eco+"/"+db.RepoName, "package without a name")
			continue
		}
		for fixed, idents := range p.Pkg.SecFixes {
			fixed = strings.TrimSpace(fixed)
			for _, entry := range idents {
				// Entries such as "CVE-2016-10013 XSA-204" name one flaw
				// twice; the first readable identifier names the record.
				var ids []string
				for _, f := range strings.Fields(cveSloppyRe().ReplaceAllString(entry, "CVE-$1")) {
					if identRe().MatchString(f) {
						ids = append(ids, f)
					}
				}
				if len(ids) == 0 {
					sink.Skip(fmt.Sprintf("%s %s %q", eco, name, entry), "unreadable identifier")
					continue
				}
				id := "ALPINE-" + strings.ToUpper(ids[0])
				v := a.byID[id]
				if v == nil {
					v = &osv.Vulnerability{ID: id}
					a.byID[id] = v
				}
				for _, alias := range ids {
					if !slices.Contains(v.Aliases, alias) {
						v.Aliases = append(v.Aliases, alias)
					}
				}
				if fixed == "0" {
					continue
				}
				v.Affected = append(v.Affected, osv.Affected{
					// secdb names origin (source) packages: no purl.
					Package: osv.Package{Ecosystem: eco, Name: name},
					Ranges: []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{
						{Introduced: "0"}, {Fixed: fixed},
					}}},
				})
			}
		}
	}
}

func (a *aggregator) emit(sink source.Sink) error {
	ids := make([]string, 0, len(a.byID))
	for id := range a.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		v := a.byID[id]
		if len(v.Affected) == 0 {
			sink.Skip(id, "marked not affected (fixed version 0) everywhere")
			continue
		}
		// Map order made the affected list random; reports and golden
		// files want it stable.
		sort.SliceStable(v.Affected, func(i, j int) bool {
			x, y := v.Affected[i], v.Affected[j]
			if x.Package.Ecosystem != y.Package.Ecosystem {
				return x.Package.Ecosystem < y.Package.Ecosystem
			}
			if x.Package.Name != y.Package.Name {
				return x.Package.Name < y.Package.Name
			}
			return x.Ranges[0].Events[1].Fixed < y.Ranges[0].Events[1].Fixed
		})
		if err := sink.Add(v); err != nil {
			return err
		}
	}
	return nil
}
