// Package licensepolicy classifies package licenses (permissive, weak
// copyleft, strong copyleft, network copyleft, unknown) and applies a
// user's allow and deny lists of SPDX ids and classes: `berth scan
// --scanners license`. Licenses come from the inventory (the SBOM's); an
// SPDX expression is judged as a user may use it: for "A OR B" the
// better option, for "A AND B" the worse.
package licensepolicy

import (
	"slices"
	"strings"

	"berth.dev/berth/internal/report/license"
)

// Class is how much a license asks of those who ship the software.
type Class string

const (
	Permissive      Class = "permissive"
	WeakCopyleft    Class = "weak-copyleft"
	StrongCopyleft  Class = "strong-copyleft"
	NetworkCopyleft Class = "network-copyleft"
	Unknown         Class = "unknown"
)

// Classes, least restrictive first.
var Classes = []Class{Permissive, WeakCopyleft, StrongCopyleft, NetworkCopyleft, Unknown}

func rank(c Class) int { return slices.Index(Classes, c) }

// families maps SPDX id prefixes (and Debian's copyright short names) to
// a class; the longest matching prefix wins. Ids not named here are
// unknown, not guessed.
var families = map[string]Class{
	// Network copyleft: using the software over a network is distribution.
	"AGPL-": NetworkCopyleft, "SSPL-": NetworkCopyleft, "OSL-3.0": NetworkCopyleft, "RPL-": NetworkCopyleft,
	"CPAL-": NetworkCopyleft, "EUPL-1.2": StrongCopyleft,
	// Strong copyleft.
	"GPL-": StrongCopyleft, "GPL": StrongCopyleft, "EUPL-": StrongCopyleft, "CC-BY-SA-": StrongCopyleft,
	"CC-BY-NC-SA-": StrongCopyleft, "Sleepycat": StrongCopyleft, "QPL-": StrongCopyleft, "OSL-": StrongCopyleft,
	"CECILL-2": StrongCopyleft, "CECILL-1": StrongCopyleft, "ODbL-": StrongCopyleft, "GFDL-": StrongCopyleft, "GFDL": StrongCopyleft,
	// Weak copyleft: changes to the library itself stay open.
	"LGPL-": WeakCopyleft, "LGPL": WeakCopyleft, "MPL-": WeakCopyleft, "EPL-": WeakCopyleft, "CDDL-": WeakCopyleft,
	"CPL-1.0": WeakCopyleft, "MS-RL": WeakCopyleft, "APSL-": WeakCopyleft, "OFL-": WeakCopyleft,
	"CECILL-C": WeakCopyleft, "IPL-1.0": WeakCopyleft, "LGPLLR": WeakCopyleft, "Nokia": WeakCopyleft,
	"GPL-2.0-with-classpath-exception": WeakCopyleft, "GPL-2.0-with-GCC-exception": WeakCopyleft,
	// Permissive.
	"MIT": Permissive, "Expat": Permissive, "BSD-": Permissive, "BSD": Permissive, "Apache-": Permissive,
	"Apache": Permissive, "ISC": Permissive, "Zlib": Permissive, "0BSD": Permissive, "Unlicense": Permissive,
	"CC0-": Permissive, "PSF-": Permissive, "Python-": Permissive, "BSL-1.0": Permissive, "Artistic-": Permissive,
	"Artistic": Permissive, "X11": Permissive, "curl": Permissive, "OpenSSL": Permissive, "SSLeay": Permissive,
	"PostgreSQL": Permissive, "WTFPL": Permissive, "Ruby": Permissive, "CC-BY-": Permissive, "NCSA": Permissive,
	"UPL-": Permissive, "BlueOak-": Permissive, "libpng": Permissive, "FTL": Permissive, "Unicode-": Permissive,
	"W3C": Permissive, "HPND": Permissive, "ICU": Permissive, "bzip2-": Permissive, "public-domain": Permissive,
	"PD": Permissive, "MIT-0": Permissive, "AFL-": Permissive, "ZPL-": Permissive, "OLDAP-": Permissive,
	"Beerware": Permissive, "TCL": Permissive, "Vim": Permissive, "JSON": Permissive, "IJG": Permissive,
	"GD": Permissive, "Info-ZIP": Permissive, "Sendmail": Permissive, "MirOS": Permissive, "FSFAP": Permissive,
	"FSFUL": Permissive, "FSFULLR": Permissive, "Unicode": Permissive, "Latex2e": Permissive, "permissive": Permissive, "Imlib2": Permissive, "X11-distribute-modifications-variant": Permissive,
}

// exceptions that turn a copyleft license into a weak one for the code
// that links to it.
var linkingExceptions = []string{"Classpath-exception", "GCC-exception", "LLVM-exception", "Autoconf-exception",
	"Bison-exception", "Font-exception", "GNU-compiler-exception", "Libtool-exception", "OpenJDK-assembly-exception",
	"openvpn-openssl-exception", "OpenSSL-exception", "Universal-FOSS-exception", "u-boot-exception"}

// ClassifyID classifies one license id (with an optional exception).
func ClassifyID(id, exception string) Class {
	id = strings.TrimSpace(id)
	if canon, ok := license.ID(id); ok {
		id = canon
	}
	best, bestLen := Unknown, 0
	for prefix, c := range families {
		if len(prefix) > bestLen && (strings.EqualFold(id, prefix) || len(id) > len(prefix) && strings.EqualFold(id[:len(prefix)], prefix) && isBoundary(prefix, id)) {
			best, bestLen = c, len(prefix)
		}
	}
	if exception != "" && (best == StrongCopyleft || best == NetworkCopyleft) {
		for _, e := range linkingExceptions {
			if strings.HasPrefix(strings.ToLower(exception), strings.ToLower(e)) {
				return WeakCopyleft
			}
		}
	}
	return best
}

// isBoundary: a prefix without its own separator matches a whole word
// only ("GPL" matches "GPL-2+", "GPL2" no, "MIT" not "MITNFA").
func isBoundary(prefix, id string) bool {
	last := prefix[len(prefix)-1]
	if last == '-' || last == '.' {
		return true
	}
	next := id[len(prefix)]
	return next == '-' || next == '+' || next == '.' || next == ' ' || next == '_'
}

// Classify classifies a declared license, an SPDX expression or a plain
// name: OR takes the least restrictive choice, AND the most.
func Classify(declared string) Class {
	e := parse(declared)
	if e == nil {
		return Unknown
	}
	return e.class()
}

// expr is a parsed license expression.
type expr struct {
	op        string // "", "AND", "OR"
	id, with  string
	sub       []*expr
	malformed bool
}

func (e *expr) class() Class {
	switch e.op {
	case "OR":
		best := Unknown
		for _, s := range e.sub {
			if c := s.class(); rank(c) < rank(best) {
				best = c
			}
		}
		return best
	case "AND":
		// The worst known obligation; an unknown part leaves the result
		// unknown unless a known part is already strong copyleft (Debian
		// lists every license of every file, some by local names).
		worst, unknown := Permissive, false
		for _, s := range e.sub {
			c := s.class()
			if c == Unknown {
				unknown = true
			} else if rank(c) > rank(worst) {
				worst = c
			}
		}
		if unknown && rank(worst) < rank(StrongCopyleft) {
			return Unknown
		}
		return worst
	}
	return ClassifyID(e.id, e.with)
}

// ids lists the license ids of every choice: for "A OR (B AND C)",
// [[A] [B C]].
func (e *expr) choices() [][]string {
	switch e.op {
	case "OR":
		var out [][]string
		for _, s := range e.sub {
			out = append(out, s.choices()...)
		}
		return out
	case "AND":
		out := [][]string{nil}
		for _, s := range e.sub {
			var next [][]string
			for _, left := range out {
				for _, right := range s.choices() {
					next = append(next, append(slices.Clone(left), right...))
				}
			}
			out = next
			if len(out) > 64 {
				out = out[:64] // a pathological expression: enough choices to judge
			}
		}
		return out
	}
	return [][]string{{e.id}}
}

// parse reads an expression leniently: package metadata is not always
// valid SPDX ("GPL-2+", "BSD-3-clause", "Apache 2.0"). A string that is
// not an expression is one id.
func parse(s string) *expr {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	toks := tokens(s)
	p := &exprParser{toks: toks}
	e := p.or(0)
	if e == nil || p.pos != len(toks) {
		return &expr{id: s}
	}
	return e
}

func tokens(s string) []string {
	var out []string
	for _, f := range strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(s)) {
		switch strings.ToUpper(f) {
		case "OR", "AND", "WITH":
			f = strings.ToUpper(f)
		}
		out = append(out, f)
	}
	return out
}

type exprParser struct {
	toks []string
	pos  int
}

func (p *exprParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *exprParser) or(depth int) *expr {
	return p.list("OR", depth, p.and)
}

func (p *exprParser) and(depth int) *expr {
	return p.list("AND", depth, p.primary)
}

func (p *exprParser) list(op string, depth int, next func(int) *expr) *expr {
	first := next(depth)
	if first == nil {
		return nil
	}
	if p.peek() != op {
		return first
	}
	e := &expr{op: op, sub: []*expr{first}}
	for p.peek() == op {
		p.pos++
		s := next(depth)
		if s == nil {
			return nil
		}
		e.sub = append(e.sub, s)
	}
	return e
}

func (p *exprParser) primary(depth int) *expr {
	if depth > 32 {
		return nil
	}
	switch t := p.peek(); t {
	case "":
		return nil
	case "(":
		p.pos++
		e := p.or(depth + 1)
		if e == nil || p.peek() != ")" {
			return nil
		}
		p.pos++
		return e
	case ")", "OR", "AND", "WITH":
		return nil
	default:
		p.pos++
		e := &expr{id: t}
		if p.peek() == "WITH" {
			p.pos++
			if p.peek() == "" {
				return nil
			}
			e.with = p.peek()
			p.pos++
		}
		return e
	}
}
