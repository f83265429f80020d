package python

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"sync"
	"unicode/utf16"

	"berth.dev/berth/internal/inventory"
)

// RequirementsAnalyzer reads pip requirements files (requirements.txt,
// requirements-dev.txt, requirements/*.txt …). Only exactly pinned lines
// ("name==1.2.3") name a version, so only those become packages; ranges,
// URLs, editable installs and other options are skipped. Includes are
// followed: "-r other.txt" adds the other file's pins, and "-c
// constraints.txt" pins the requirements this file names without a
// version, as pip does (a constraint alone installs nothing).
type RequirementsAnalyzer struct{}

// Name implements inventory.Analyzer.
func (RequirementsAnalyzer) Name() string { return "pip-requirements" }

// Version implements inventory.Analyzer.
func (RequirementsAnalyzer) Version() int { return 4 }

// MaxFileBytes implements inventory.Analyzer.
func (RequirementsAnalyzer) MaxFileBytes() int64 { return inventory.MaxLockfileBytes }

// Required asks for requirements files and for the constraints files
// they may include.
func (RequirementsAnalyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && (isRequirements(p) || isConstraints(p))
}

// Analyze implements inventory.Analyzer: each requirements file is one
// set, holding its own pins and those of the files it includes.
func (a RequirementsAnalyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	var warns []string
	parse := func(data []byte, location, analyzer string) ([]inventory.Package, error) {
		pkgs, w := resolveRequirements(files, location[1:], data, analyzer)
		warns = append(warns, w...)
		return pkgs, nil
	}
	res, err := inventory.AnalyzeFiles(ctx, files, a.Name(), isRequirements, parse)
	if err != nil {
		return nil, err
	}
	res.Warns = append(res.Warns, warns...)
	return res, nil
}

func isRequirements(p string) bool {
	base := path.Base(p)
	if !strings.HasSuffix(base, ".txt") {
		return false
	}
	// requirements.txt, requirements-dev.txt, dev-requirements.txt and
	// other-requirements.txt are all common (syft reads *requirements*.txt).
	return strings.Contains(base, "requirements") || path.Base(path.Dir(p)) == "requirements"
}

func isConstraints(p string) bool {
	base := path.Base(p)
	return strings.HasSuffix(base, ".txt") && strings.Contains(base, "constraints")
}

// ParseRequirements reads the pinned requirements of one pip requirements
// file, without following its includes. Lines it does not understand are
// not errors: the format allows far more than pins, and none of it names
// an installed version.
func ParseRequirements(data []byte, location, analyzer string) ([]inventory.Package, error) {
	r, err := readRequirements(data, location, analyzer)
	if err != nil {
		return nil, err
	}
	return r.pins, nil
}

// requirements is what one file says.
type requirements struct {
	pins []inventory.Package
	// unpinned are the normalised names required without an exact pin:
	// a constraint may pin them.
	unpinned []string
	// includes are -r files, constraints -c files, as written.
	includes, constraints []string
}

func readRequirements(data []byte, location, analyzer string) (*requirements, error) {
	r := &requirements{}
	data = decodeBOM(data)
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
		r.line(logical.String(), location, analyzer)
		logical.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read requirements: %w", err)
	}
	// A backslash on the last line continues onto nothing: the line
	// still counts.
	if logical.Len() > 0 {
		r.line(logical.String(), location, analyzer)
	}
	return r, nil
}

func (r *requirements) line(line, location, analyzer string) {
	if kind, target, ok := includeLine(line); ok {
		if kind == "r" {
			r.includes = append(r.includes, target)
		} else {
			r.constraints = append(r.constraints, target)
		}
		return
	}
	if name, version, ok := pinned(line); ok {
		r.pins = append(r.pins, pkg(name, version, location, analyzer))
		return
	}
	if name, ok := requirementName(line); ok {
		r.unpinned = append(r.unpinned, normalize(name))
	}
}

// includeLine reads "-r FILE", "--requirement FILE", "--requirement=FILE",
// "-rFILE" and the same with -c/--constraint.
func includeLine(line string) (kind, target string, ok bool) {
	line = strings.TrimSpace(stripComment(line))
	for _, o := range []struct{ short, long, kind string }{{"-r", "--requirement", "r"}, {"-c", "--constraint", "c"}} {
		for _, opt := range []string{o.long, o.short} {
			rest, found := strings.CutPrefix(line, opt)
			if !found {
				continue
			}
			rest = strings.TrimPrefix(rest, "=")
			if rest = strings.TrimSpace(rest); rest != "" && !strings.HasPrefix(rest, "-") {
				return o.kind, strings.Fields(rest)[0], true
			}
		}
	}
	return "", "", false
}

// stripComment drops a " #" comment (a "#" inside a URL fragment is not
// one, but URL lines name no pins anyway).
func stripComment(line string) string {
	if i := strings.Index(line, "#"); i >= 0 {
		return line[:i]
	}
	return line
}

// decodeBOM returns data as UTF-8: pip reads a file that starts with a
// UTF-16 byte order mark in that encoding (Windows editors write UTF-16),
// and drops a UTF-8 one.
func decodeBOM(data []byte) []byte {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return data[3:]
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		order = binary.LittleEndian
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		order = binary.BigEndian
	default:
		return data
	}
	units := make([]uint16, 0, len(data)/2)
	for i := 2; i+1 < len(data); i += 2 {
		units = append(units, order.Uint16(data[i:]))
	}
	return []byte(string(utf16.Decode(units)))
}

// pepName is a project name as PEP 508 allows it; a line whose name is
// anything else (a template's {{ … }}, shell syntax) names no package.
var pepName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
})

// pepVersion is the alphabet of a version pip would accept after ==
// (PEP 440, with local versions and epochs); quotes and template syntax
// are not in it.
var pepVersion = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+!_-]*$`)
})

// pinned returns the name and version of a "name[extras]==version ; marker
// --hash=…" line.
func pinned(line string) (name, version string, ok bool) {
	line, _, _ = strings.Cut(stripComment(line), ";")
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "-") {
		return "", "", false
	}
	name, rest, ok := strings.Cut(line, "==")
	if !ok {
		return "", "", false
	}
	// "===" is arbitrary equality: the version string exactly as
	// written, still a pin.
	rest = strings.TrimPrefix(rest, "=")
	name, _, _ = strings.Cut(name, "[")
	name = strings.TrimSpace(name)
	fields := strings.Fields(rest)
	if len(fields) == 0 || !pepName().MatchString(name) {
		return "", "", false
	}
	version = fields[0]
	// "name== --hash=…" pins nothing: the option is not a version.
	if !pepVersion().MatchString(version) || strings.Contains(version, "*") { // "==1.*" is a range
		return "", "", false
	}
	return name, version, true
}

var requirementRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([<>=!~].*)?$`)
})

// requirementName returns the project name of a requirement line that
// pins nothing ("requests", "requests>=2", "requests[socks]~=2.0").
func requirementName(line string) (string, bool) {
	line, _, _ = strings.Cut(stripComment(line), ";")
	m := requirementRE().FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return "", false
	}
	return m[1], true
}

var pep503 = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[-_.]+`) })

func normalize(name string) string {
	return pep503().ReplaceAllString(strings.ToLower(name), "-")
}

// maxIncludes bounds the files one requirements file may pull in, cycles
// aside (those are cut by the visited set).
const maxIncludes = 256

// resolveRequirements reads the requirements file at p (slash-separated,
// relative to the root of files) and the files it includes, each once:
// the -r files' pins, and for the requirements without a pin, the version
// a -c file pins. An include that is missing or unreadable is a warning;
// the rest is still read.
func resolveRequirements(files fs.FS, p string, data []byte, analyzer string) ([]inventory.Package, []string) {
	var (
		warns       []string
		pins        []inventory.Package
		unpinned    []string
		constraints = map[string]inventory.Package{}
		visited     = map[string]bool{p: true}
		queue       = []include{{p, data, "r"}}
	)
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		r, err := readRequirements(cur.data, "/"+cur.path, analyzer)
		if err != nil {
			warns = append(warns, fmt.Sprintf("/%s: %v", cur.path, err))
			continue
		}
		if cur.kind == "c" {
			for _, c := range r.pins {
				if _, ok := constraints[normalize(c.Name)]; !ok {
					constraints[normalize(c.Name)] = c
				}
			}
		} else {
			pins = append(pins, r.pins...)
			unpinned = append(unpinned, r.unpinned...)
		}
		type target struct{ name, kind string }
		var targets []target
		for _, t := range r.includes {
			// A constraints file's own -r lines are constraints too.
			targets = append(targets, target{t, cur.kind})
		}
		for _, t := range r.constraints {
			targets = append(targets, target{t, "c"})
		}
		for _, t := range targets {
			next, ok := includePath(cur.path, t.name)
			if !ok {
				warns = append(warns, fmt.Sprintf("/%s: include %q not followed: not a file in the image", cur.path, t.name))
				continue
			}
			if visited[next] {
				continue
			}
			if len(visited) >= maxIncludes {
				warns = append(warns, fmt.Sprintf("/%s: more than %d included files; the rest are not read", p, maxIncludes))
				break
			}
			visited[next] = true
			b, err := fs.ReadFile(files, next)
			if err != nil {
				why := err.Error()
				if errors.Is(err, fs.ErrNotExist) {
					why = "not in this layer, or not a name berth reads (*requirements*.txt, requirements/*.txt, *constraints*.txt)"
				}
				warns = append(warns, fmt.Sprintf("/%s: include /%s: %s", cur.path, next, why))
				continue
			}
			queue = append(queue, include{next, b, t.kind})
		}
	}
	pinnedNames := map[string]bool{}
	for _, p := range pins {
		pinnedNames[normalize(p.Name)] = true
	}
	for _, n := range unpinned {
		if c, ok := constraints[n]; ok && !pinnedNames[n] {
			pins = append(pins, c)
			pinnedNames[n] = true
		}
	}
	return pins, warns
}

// include is a file to read: a requirements file ("r") or a constraints
// file ("c").
type include struct {
	path string
	data []byte
	kind string
}

// includePath resolves an include target against the including file's
// folder; an absolute path starts at the image root. URLs are not
// followed.
func includePath(from, target string) (string, bool) {
	if strings.Contains(target, "://") {
		return "", false
	}
	var p string
	if strings.HasPrefix(target, "/") {
		p = path.Clean(target)[1:]
	} else {
		p = path.Join(path.Dir(from), target)
	}
	if p == "" || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	return p, true
}
