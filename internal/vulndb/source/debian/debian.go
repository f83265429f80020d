// Package debian reads the Debian security tracker's advisory lists
// (data/DSA/list and data/DLA/list, the tracker's native text format) and
// converts each advisory to one OSV record the way osv.dev does: id DSA-n-r or
// DLA-n-r, the CVEs as aliases, one affected entry per release and source
// package, ecosystem "Debian:<release number>", range ECOSYSTEM introduced 0
// fixed <version>.
//
// Tags in place of a version:
//   - <not-affected>: the package in that release never had the flaw, so it
//     gets no affected entry.
//   - <unfixed>, <end-of-life>, <no-dsa>, <ignored>, <postponed>: the package is
//     affected and no fixed version exists in that release; the entry has no
//     fixed event (every version is affected, as osv.dev writes it) and keeps
//     the tag in database_specific.debian_status so reports can say why.
//   - any other tag: the line is skipped and counted.
package debian

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
)

// DefaultBase is the tracker's repository as served raw by Salsa.
const DefaultBase = "https://salsa.debian.org/security-tracker-team/security-tracker/-/raw/master"

// Lists are the advisory lists read, relative to the base.
var lists = [][]string{{"data", "DSA", "list"}, {"data", "DLA", "list"}}

// releases maps a codename to the release number OSV writes after "Debian:".
// From distro-info-data, with the point dropped where Debian dropped it.
var releases = map[string]string{
	"woody":    "3.0",
	"sarge":    "3.1",
	"etch":     "4",
	"lenny":    "5",
	"squeeze":  "6",
	"wheezy":   "7",
	"jessie":   "8",
	"stretch":  "9",
	"buster":   "10",
	"bullseye": "11",
	"bookworm": "12",
	"trixie":   "13",
	"forky":    "14",
	"duke":     "15",
}

// noFixTags are the tags that leave a package affected with no fix.
var noFixTags = map[string]bool{
	"<unfixed>": true, "<end-of-life>": true, "<no-dsa>": true, "<ignored>": true, "<postponed>": true,
}

// Source is the tracker at Base (a URL or a local checkout).
type Source struct{ Base string }

// New returns the tracker at base.
func New(base string) *Source { return &Source{Base: base} }

// Name implements source.Source.
func (s *Source) Name() string { return "debian-tracker " + s.Base }

// Load implements source.Source.
func (s *Source) Load(ctx context.Context, f source.Fetcher, sink source.Sink) error {
	for _, l := range lists {
		p, err := f.Fetch(ctx, source.Join(s.Base, l...))
		if err != nil {
			return fmt.Errorf("debian tracker: %w", err)
		}
		if err := parseFile(ctx, p, sink); err != nil {
			return fmt.Errorf("debian tracker %s: %w", strings.Join(l, "/"), err)
		}
	}
	return nil
}

func parseFile(ctx context.Context, p string, sink source.Sink) error {
	fh, err := os.Open(p)
	if err != nil {
		return err
	}
	defer fh.Close()
	return Parse(ctx, fh, sink)
}

var (
	// [29 Mar 2023] DSA-5380-1 xorg-server - security update
	headerRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\[(\d{1,2} [A-Za-z]{3} \d{4})\]\s+((?:DSA|DLA|DTSA)-\d+(?:-\d+)?)\s*(.*)$`)
	})
	// [bullseye] - xorg-server 2:1.20.11-1+deb11u6 (optional note)
	releaseRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\[([a-z][a-z0-9-]*)\]\s+-\s+(\S+)\s+(\S+)`) })
)

// Parse reads one advisory list and hands each advisory to sink. Lines it
// cannot read are skipped and counted; only a read error fails.
func Parse(ctx context.Context, r io.Reader, sink source.Sink) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	var cur *osv.Vulnerability
	flush := func() error {
		if cur == nil {
			return nil
		}
		v := cur
		cur = nil
		if len(v.Affected) == 0 {
			sink.Skip(v.ID, "no affected package in any release")
			return nil
		}
		return sink.Add(v)
	}
	lineNo := 0
	for sc.Scan() {
		lineNo++
		if lineNo%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "NOTE:") {
			continue
		}
		if raw[0] != ' ' && raw[0] != '\t' {
			if err := flush(); err != nil {
				return err
			}
			v, err := parseHeader(line)
			if err != nil {
				sink.Skip(fmt.Sprintf("line %d", lineNo), err.Error())
				continue
			}
			cur = v
			continue
		}
		if cur == nil {
			// Indented lines after an unreadable header belong to it; that
			// header was counted already.
			continue
		}
		if err := parseDetail(cur, line); err != nil {
			sink.Skip(cur.ID, err.Error())
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

func parseHeader(line string) (*osv.Vulnerability, error) {
	m := headerRe().FindStringSubmatch(line)
	if m == nil {
		return nil, errors.New("unreadable advisory header")
	}
	date, err := time.Parse("2 Jan 2006", m[1])
	if err != nil {
		return nil, errors.New("unreadable advisory date")
	}
	return &osv.Vulnerability{
		ID:        m[2],
		Published: date,
		Modified:  date,
		Summary:   strings.TrimSpace(m[3]),
		References: []osv.Reference{{
			Type: "ADVISORY",
			URL:  "https://security-tracker.debian.org/tracker/" + m[2],
		}},
	}, nil
}

func parseDetail(v *osv.Vulnerability, line string) error {
	if strings.HasPrefix(line, "{") {
		end := strings.IndexByte(line, '}')
		if end < 0 {
			return errors.New("unterminated {…} list")
		}
		for _, id := range strings.Fields(line[1:end]) {
			if !slices.Contains(v.Aliases, id) {
				v.Aliases = append(v.Aliases, id)
			}
		}
		return nil
	}
	m := releaseRe().FindStringSubmatch(line)
	if m == nil {
		return errors.New("unreadable release line")
	}
	codename, pkg, version := m[1], m[2], m[3]
	release, ok := releases[codename]
	if !ok {
		return fmt.Errorf("unknown Debian release %q", codename)
	}
	a := osv.Affected{
		// The tracker names source packages; like osv.dev, no purl, which
		// would name a binary package.
		Package: osv.Package{Ecosystem: "Debian:" + release, Name: pkg},
		Ranges:  []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}}}},
	}
	switch {
	case version == "<not-affected>":
		return nil
	case noFixTags[version]:
		status, _ := json.Marshal(map[string]string{"debian_status": strings.Trim(version, "<>")})
		a.DatabaseSpecific = status
	case strings.HasPrefix(version, "<"):
		return fmt.Errorf("unknown status %s", version)
	default:
		a.Ranges[0].Events = append(a.Ranges[0].Events, osv.Event{Fixed: version})
	}
	v.Affected = append(v.Affected, a)
	return nil
}
