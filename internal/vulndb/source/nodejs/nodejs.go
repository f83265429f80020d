// Package nodejs reads the Node.js Security WG advisories (vuln.zip of the
// nodejs/security-wg repository: npm/<n>.json for npm packages, core/<n>.json
// for the runtime) and converts the npm ones to OSV: id NSWG-ECO-<n>,
// ecosystem npm, one SEMVER range per "||" alternative of
// vulnerable_versions. Runtime advisories name no package an OSV ecosystem
// knows, so they are counted as skipped.
package nodejs

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
)

// Source is the vuln.zip at Loc (a URL or a local path).
type Source struct{ Loc string }

// New returns the advisories in the vuln.zip at loc.
func New(loc string) *Source { return &Source{Loc: loc} }

// Name implements source.Source.
func (s *Source) Name() string { return "nodejs-wg " + s.Loc }

// maxAdvisory bounds one decompressed advisory.
const maxAdvisory = 4 << 20

// Load implements source.Source.
func (s *Source) Load(ctx context.Context, f source.Fetcher, sink source.Sink) error {
	p, err := f.Fetch(ctx, s.Loc)
	if err != nil {
		return fmt.Errorf("nodejs-wg: %w", err)
	}
	zr, err := zip.OpenReader(p)
	if err != nil {
		return fmt.Errorf("nodejs-wg %s: not a readable zip: %w", path.Base(s.Loc), err)
	}
	defer zr.Close()
	for i, zf := range zr.File {
		if i%128 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		dir, file := path.Split(zf.Name)
		if zf.FileInfo().IsDir() || !strings.HasSuffix(file, ".json") || file == "index.json" {
			continue
		}
		b, err := readEntry(zf)
		if err != nil {
			return fmt.Errorf("nodejs-wg zip entry %s: %w", zf.Name, err)
		}
		if path.Base(dir) == "core" {
			sink.Skip("NSWG-CORE-"+strings.TrimSuffix(file, ".json"), "Node.js runtime advisory (no OSV ecosystem)")
			continue
		}
		v, err := Convert(b)
		if err != nil {
			sink.Skip(zf.Name, err.Error())
			continue
		}
		if err := sink.Add(v); err != nil {
			return err
		}
	}
	return nil
}

func readEntry(zf *zip.File) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	// Reading to EOF is what makes archive/zip verify the CRC.
	if _, err := io.Copy(&buf, io.LimitReader(rc, maxAdvisory+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxAdvisory {
		return nil, fmt.Errorf("advisory exceeds %d bytes", maxAdvisory)
	}
	return buf.Bytes(), nil
}

// advisory is one npm/<n>.json document.
type advisory struct {
	ID                 json.Number `json:"id"`
	ModuleName         string      `json:"module_name"`
	Title              string      `json:"title"`
	Overview           string      `json:"overview"`
	Recommendation     string      `json:"recommendation"`
	CVEs               []string    `json:"cves"`
	VulnerableVersions *string     `json:"vulnerable_versions"`
	PatchedVersions    *string     `json:"patched_versions"`
	PublishDate        string      `json:"publish_date"`
	UpdatedAt          string      `json:"updated_at"`
	References         []string    `json:"references"`
	CVSSVector         string      `json:"cvss_vector"`
}

// Convert turns one npm advisory document into an OSV record. The error
// text of a rejected advisory is the reason it is counted under.
func Convert(doc []byte) (*osv.Vulnerability, error) {
	var a advisory
	if err := json.Unmarshal(doc, &a); err != nil {
		return nil, errors.New("invalid advisory JSON")
	}
	if a.ID == "" || strings.TrimSpace(a.ModuleName) == "" {
		return nil, errors.New("advisory without id or module_name")
	}
	if _, err := strconv.ParseUint(a.ID.String(), 10, 32); err != nil {
		return nil, errors.New("advisory without id or module_name")
	}
	if a.VulnerableVersions == nil {
		return nil, errors.New("advisory without vulnerable_versions")
	}
	ranges, versions, err := parseRange(*a.VulnerableVersions)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(a.ModuleName)
	v := &osv.Vulnerability{
		ID:       "NSWG-ECO-" + a.ID.String(),
		Aliases:  a.CVEs,
		Summary:  strings.TrimSpace(a.Title),
		Details:  strings.TrimSpace(strings.TrimSpace(a.Overview) + "\n\n" + strings.TrimSpace(a.Recommendation)),
		Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "npm", Name: name, PURL: "pkg:npm/" + purlName(name)}, Ranges: ranges, Versions: versions}},
	}
	v.Published, _ = time.Parse(time.DateOnly, a.PublishDate)
	v.Modified, _ = time.Parse(time.DateOnly, a.UpdatedAt)
	if strings.HasPrefix(a.CVSSVector, "CVSS:3") {
		v.Severity = []osv.Severity{{Type: "CVSS_V3", Score: a.CVSSVector}}
	}
	for _, u := range a.References {
		v.References = append(v.References, osv.Reference{Type: "WEB", URL: u})
	}
	v.References = append(v.References, osv.Reference{Type: "ADVISORY", URL: "https://github.com/nodejs/security-wg/blob/main/vuln/npm/" + a.ID.String() + ".json"})
	return v, nil
}

func purlName(name string) string {
	// A scope's "@" is escaped in a purl namespace.
	return strings.Replace(name, "@", "%40", 1)
}

// parseRange converts a node-semver range as the WG writes them ("<=1.5.1",
// ">=2.0.0 <2.13.0 || 3.1.0", "2.0.x", "~0.8.0-pre", "*") into SEMVER ranges
// and exact versions. Each "||" alternative is one range: a lower bound >=
// or > becomes introduced (for ">" that also counts the bound itself, the
// one version OSV events cannot leave out), an upper bound < becomes fixed
// and <= last_affected; x-ranges, ~ and ^ become the bounds node-semver
// gives them; a bare full version is an exact version.
func parseRange(expr string) ([]osv.Range, []string, error) {
	var ranges []osv.Range
	var versions []string
	for _, alt := range strings.Split(expr, "||") {
		comps, err := comparators(alt)
		if err != nil {
			return nil, nil, err
		}
		if len(comps) == 1 {
			c := comps[0]
			if c.ver == "*" {
				ranges = append(ranges, osv.Range{Type: osv.RangeSemver, Events: []osv.Event{{Introduced: "0"}}})
				continue
			}
			if lo, hi, ok := expand(c); ok {
				ranges = append(ranges, osv.Range{Type: osv.RangeSemver, Events: []osv.Event{{Introduced: lo}, {Fixed: hi}}})
				continue
			}
			if c.op == "" || c.op == "=" {
				versions = append(versions, c.ver)
				continue
			}
		}
		var lower, upper *comparator
		for i := range comps {
			c := &comps[i]
			switch c.op {
			case ">=", ">":
				if lower != nil {
					return nil, nil, errors.New("unsupported node-semver range")
				}
				lower = c
			case "<", "<=":
				if upper != nil {
					return nil, nil, errors.New("unsupported node-semver range")
				}
				upper = c
			default:
				return nil, nil, errors.New("unsupported node-semver range")
			}
		}
		events := []osv.Event{{Introduced: "0"}}
		if lower != nil {
			events[0].Introduced = lower.ver
		}
		switch {
		case upper == nil:
		case upper.op == "<":
			events = append(events, osv.Event{Fixed: upper.ver})
		default:
			events = append(events, osv.Event{LastAffected: upper.ver})
		}
		ranges = append(ranges, osv.Range{Type: osv.RangeSemver, Events: events})
	}
	return ranges, versions, nil
}

type comparator struct{ op, ver string }

// comparators splits "<= 1.0.3 >2.0.0" into its operator/version pairs;
// the WG sometimes puts a space between the two.
func comparators(alt string) ([]comparator, error) {
	var out []comparator
	fields := strings.Fields(alt)
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		op := f[:len(f)-len(strings.TrimLeft(f, "<>=~^"))]
		ver := f[len(op):]
		if ver == "" && i+1 < len(fields) {
			i++
			ver = fields[i]
		}
		switch op {
		case "", "=", "<", "<=", ">", ">=", "~", "^":
		default:
			return nil, errors.New("unsupported node-semver range")
		}
		ver = strings.TrimPrefix(ver, "v")
		switch {
		case ver == "*" && op == "":
		case op == "" || op == "~" || op == "^":
			if _, _, ok := expand(comparator{op, ver}); !ok && !plainVersion(ver) {
				return nil, errors.New("unsupported node-semver range")
			}
		case !plainVersion(ver):
			return nil, errors.New("unsupported node-semver range")
		}
		out = append(out, comparator{op, ver})
	}
	if len(out) == 0 {
		return nil, errors.New("empty node-semver range")
	}
	return out, nil
}

// plainVersion reports whether v is a full version, not a pattern such as
// 1.x, 1.2.* or ^1.2.
func plainVersion(v string) bool {
	if v == "" || strings.ContainsAny(v, "^~<>=|") {
		return false
	}
	core, _, _ := strings.Cut(v, "-")
	for _, part := range strings.Split(core, ".") {
		if part == "x" || part == "X" || part == "*" {
			return false
		}
	}
	return true
}

// expand gives the bounds node-semver puts on an x-range ("1.2.x", "1.x",
// "1"), a tilde range ("~1.2.3") or a caret range ("^0.2.3"): the range is
// lo <= v < hi. ok is false for anything else, a full bare version included.
func expand(c comparator) (lo, hi string, ok bool) {
	core, pre, hasPre := strings.Cut(c.ver, "-")
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return "", "", false
	}
	var nums []int
	for _, p := range parts {
		if p == "x" || p == "X" || p == "*" {
			break
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return "", "", false
		}
		nums = append(nums, n)
	}
	wild := len(nums) < 3
	if (wild && hasPre) || len(nums) == 0 {
		return "", "", false
	}
	full := append(append([]int{}, nums...), 0, 0)[:3]
	lo = fmt.Sprintf("%d.%d.%d", full[0], full[1], full[2])
	if hasPre {
		lo += "-" + pre
	}
	bump := func(i int) string {
		next := []int{full[0], full[1], full[2]}
		next[i]++
		for j := i + 1; j < 3; j++ {
			next[j] = 0
		}
		return fmt.Sprintf("%d.%d.%d", next[0], next[1], next[2])
	}
	switch c.op {
	case "", "=":
		if !wild {
			return "", "", false
		}
		return lo, bump(len(nums) - 1), true
	case "~":
		if len(nums) == 1 {
			return lo, bump(0), true
		}
		return lo, bump(1), true
	case "^":
		switch {
		case full[0] != 0 || len(nums) == 1:
			return lo, bump(0), true
		case full[1] != 0 || len(nums) == 2:
			return lo, bump(1), true
		default:
			return lo, bump(2), true
		}
	}
	return "", "", false
}
