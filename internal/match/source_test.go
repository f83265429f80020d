package match

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/match/version"
	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/testpeers"
)

// vulndata is the path of elem inside the shared fixtures' vulndata
// folder; the test fails when it is missing.
func vulndata(tb testing.TB, elem ...string) string {
	tb.Helper()
	return testpeers.Shared(tb, append([]string{"vulndata"}, elem...)...)
}

// memSource is an in-memory Source indexed like the real DB: by
// (ecosystem, name), PyPI names normalised.
type memSource struct {
	byKey map[string][]*osv.Vulnerability
	n     int
}

func newMemSource(recs ...*osv.Vulnerability) *memSource {
	s := &memSource{byKey: make(map[string][]*osv.Vulnerability)}
	for _, r := range recs {
		s.add(r)
	}
	return s
}

func sourceKey(eco, name string) string {
	if eco == "PyPI" {
		name = normalizePyPI(name)
	}
	return eco + "\x00" + name
}

func (s *memSource) add(r *osv.Vulnerability) {
	s.n++
	seen := make(map[string]bool)
	for _, a := range r.Affected {
		k := sourceKey(a.Package.Ecosystem, a.Package.Name)
		if !seen[k] {
			seen[k] = true
			s.byKey[k] = append(s.byKey[k], r)
		}
	}
}

func (s *memSource) Vulnerabilities(_ context.Context, eco, name string) ([]*osv.Vulnerability, error) {
	return s.byKey[sourceKey(eco, name)], nil
}

var (
	osvOnce sync.Once
	osvSrc  *memSource
	osvErr  error
)

// osvSource loads every OSV all.zip under vulndata/osv once.
func osvSource(tb testing.TB) *memSource {
	tb.Helper()
	feed := vulndata(tb, "osv")
	osvOnce.Do(func() {
		osvSrc = newMemSource()
		zips, _ := filepath.Glob(filepath.Join(feed, "*", "all.zip"))
		if len(zips) == 0 {
			osvErr = fmt.Errorf("no */all.zip in %s", feed)
		}
		for _, z := range zips {
			if osvErr = loadZip(osvSrc, z); osvErr != nil {
				return
			}
		}
	})
	if osvErr != nil {
		tb.Fatal(osvErr)
	}
	return osvSrc
}

func loadZip(s *memSource, path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		var v osv.Vulnerability
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		s.add(&v)
	}
	return nil
}

var debianReleaseNumbers = map[string]string{"bullseye": "11", "buster": "10", "stretch": "9", "jessie": "8"}

// debianAdvisory converts one advisory of the tracker's DSA or DLA list
// into OSV as the vulndata README describes: one record per advisory,
// aliases the CVEs, one affected entry per release line, ECOSYSTEM range
// introduced 0, fixed the version named.
func debianAdvisory(t *testing.T, list, id string) *osv.Vulnerability {
	t.Helper()
	f, err := os.Open(vulndata(t, "debian-tracker", "data", list, "list"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := regexp.MustCompile(`^\[.*\] ` + regexp.QuoteMeta(id) + ` (\S+)`)
	release := regexp.MustCompile(`^\t\[(\w+)\] - (\S+) (\S+)`)
	var rec *osv.Vulnerability
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rec == nil {
			if head.MatchString(line) {
				rec = &osv.Vulnerability{ID: id, Summary: line}
			}
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			break
		}
		if cves, ok := strings.CutPrefix(strings.TrimSpace(line), "{"); ok {
			rec.Aliases = strings.Fields(strings.TrimSuffix(cves, "}"))
		}
		if m := release.FindStringSubmatch(line); m != nil && !strings.HasPrefix(m[3], "<") {
			rec.Affected = append(rec.Affected, osv.Affected{
				Package: osv.Package{Ecosystem: "Debian:" + debianReleaseNumbers[m[1]], Name: m[2]},
				Ranges:  []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}, {Fixed: m[3]}}}},
			})
		}
	}
	if rec == nil {
		t.Fatalf("%s not found in %s list", id, list)
	}
	return rec
}

// alpineRecords converts the secfixes of one package in the given branches
// into one OSV record per CVE, with an affected entry per branch whose
// fixed version is the highest that branch lists for the CVE (older lines
// are history carried over from earlier branches).
func alpineRecords(t *testing.T, pkg string, branches ...string) []*osv.Vulnerability {
	t.Helper()
	byCVE := make(map[string]*osv.Vulnerability)
	var order []string
	for _, br := range branches {
		data, err := os.ReadFile(vulndata(t, "alpine-secdb", br, "main.json"))
		if err != nil {
			t.Fatal(err)
		}
		var db struct {
			Packages []struct {
				Pkg struct {
					Name     string              `json:"name"`
					Secfixes map[string][]string `json:"secfixes"`
				} `json:"pkg"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(data, &db); err != nil {
			t.Fatal(err)
		}
		for _, p := range db.Packages {
			if p.Pkg.Name != pkg {
				continue
			}
			fixedFor := make(map[string]string)
			for fixed, ids := range p.Pkg.Secfixes {
				for _, id := range ids {
					id = strings.Fields(id)[0]
					if old, ok := fixedFor[id]; ok {
						a, _ := version.APK.Parse(old)
						b, _ := version.APK.Parse(fixed)
						if a.Compare(b) >= 0 {
							continue
						}
					}
					fixedFor[id] = fixed
				}
			}
			for id, fixed := range fixedFor {
				rec, ok := byCVE[id]
				if !ok {
					rec = &osv.Vulnerability{ID: "ALPINE-" + id, Aliases: []string{id}, Modified: time.Date(2020, 6, 8, 0, 0, 0, 0, time.UTC)}
					byCVE[id] = rec
					order = append(order, id)
				}
				rec.Affected = append(rec.Affected, osv.Affected{
					Package: osv.Package{Ecosystem: "Alpine:" + br, Name: pkg},
					Ranges:  []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}, {Fixed: fixed}}}},
				})
			}
		}
	}
	out := make([]*osv.Vulnerability, 0, len(order))
	for _, id := range order {
		out = append(out, byCVE[id])
	}
	return out
}
