// Package license recognises SPDX license identifiers and license
// expressions (SPDX 2.3, Annex D) in the free-form license strings that
// package metadata carries, so the SBOM encoders can say "this is SPDX id
// MIT" rather than pass the string along as an opaque name.
//
// The identifier lists are embedded (see README.md for their source); a
// string is only ever reported as SPDX when every identifier in it is on
// those lists or is a LicenseRef.
package license

import (
	_ "embed"
	"strings"
)

//go:embed licenses.txt
var licenseList string

//go:embed exceptions.txt
var exceptionList string

// maxDepth bounds parenthesis nesting; real expressions nest two or three
// levels, and the bound keeps hostile input from recursing without limit.
const maxDepth = 32

// lookup finds id in list, a newline-separated identifier list sorted
// case-insensitively (README.md says how the files are made; a test checks
// the order), matching ASCII case-insensitively, and returns the list's
// spelling. It binary-searches the embedded text in place: building maps
// of the ~800 ids cost more than a millisecond of page faults in every
// short-lived berth command that wrote an SBOM.
func lookup(list, id string) (string, bool) {
	list = strings.TrimSuffix(list, "\n")
	lo, hi := 0, len(list) // a byte range of whole lines
	for lo < hi {
		mid := lo + (hi-lo)/2
		start := strings.LastIndexByte(list[lo:mid], '\n') + 1 + lo
		end := strings.IndexByte(list[mid:hi], '\n')
		if end < 0 {
			end = hi
		} else {
			end += mid
		}
		line := list[start:end]
		switch c := compareFold(id, line); {
		case c == 0:
			return line, true
		case c < 0:
			hi = start
		default:
			lo = end + 1
		}
	}
	return "", false
}

// compareFold orders a and b as their ASCII lower-case forms.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := lower(a[i]), lower(b[i])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ID returns the canonical spelling of s when s is exactly one SPDX license
// identifier from the license list (matched case-insensitively, as SPDX
// requires). "mit" gives "MIT"; "GPL-2.0+" and "MIT OR Apache-2.0" are
// expressions, not identifiers, and give false.
func ID(s string) (string, bool) {
	id, ok := lookup(licenseList, strings.TrimSpace(s))
	return id, ok
}

// Expression reports whether s is a valid SPDX license expression and
// returns it in canonical form: identifiers spelled as on the license list,
// operators in upper case, single spaces between terms. A single identifier
// is also a valid expression.
func Expression(s string) (string, bool) {
	toks, ok := tokenize(s)
	if !ok || len(toks) == 0 {
		return "", false
	}
	p := parser{toks: toks}
	if !p.compound(0) || p.pos != len(p.toks) {
		return "", false
	}
	return p.render(), true
}

// IsLicenseRef reports whether s is a user-defined license reference,
// "LicenseRef-<idstring>" (optionally prefixed "DocumentRef-<idstring>:").
func IsLicenseRef(s string) bool {
	_, ok := licenseRef(s)
	return ok
}

func tokenize(s string) ([]string, bool) {
	var toks []string
	start := -1
	flush := func(end int) {
		if start >= 0 {
			toks = append(toks, s[start:end])
			start = -1
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(' || c == ')':
			flush(i)
			toks = append(toks, s[i:i+1])
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush(i)
		case isIDChar(c) || c == '+' || c == ':':
			if start < 0 {
				start = i
			}
		default:
			return nil, false
		}
	}
	flush(len(s))
	return toks, true
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// parser checks the grammar
//
//	compound = and *( "OR" and )
//	and      = with *( "AND" with )
//	with     = primary [ "WITH" exception-id ]
//	primary  = "(" compound ")" / simple
//	simple   = license-id [ "+" ] / license-ref
//
// and rewrites each token in place into its canonical spelling.
type parser struct {
	toks []string
	pos  int
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

// operator matches an operator token; SPDX allows all-upper or all-lower.
func (p *parser) operator(op string) bool {
	t := p.peek()
	if t == op || t == strings.ToLower(op) {
		p.toks[p.pos] = op
		p.pos++
		return true
	}
	return false
}

func (p *parser) compound(depth int) bool {
	if !p.and(depth) {
		return false
	}
	for p.operator("OR") {
		if !p.and(depth) {
			return false
		}
	}
	return true
}

func (p *parser) and(depth int) bool {
	if !p.with(depth) {
		return false
	}
	for p.operator("AND") {
		if !p.with(depth) {
			return false
		}
	}
	return true
}

func (p *parser) with(depth int) bool {
	if !p.primary(depth) {
		return false
	}
	if p.operator("WITH") {
		id, ok := lookup(exceptionList, p.peek())
		if !ok {
			return false
		}
		p.toks[p.pos] = id
		p.pos++
	}
	return true
}

func (p *parser) primary(depth int) bool {
	if p.peek() == "(" {
		if depth >= maxDepth {
			return false
		}
		p.pos++
		if !p.compound(depth+1) || p.peek() != ")" {
			return false
		}
		p.pos++
		return true
	}
	return p.simple()
}

func (p *parser) simple() bool {
	t := p.peek()
	switch t {
	case "", "(", ")", "AND", "OR", "WITH", "and", "or", "with":
		return false
	}
	if ref, ok := licenseRef(t); ok {
		p.toks[p.pos] = ref
		p.pos++
		return true
	}
	base, plus := strings.CutSuffix(t, "+")
	id, ok := lookup(licenseList, base)
	if !ok {
		return false
	}
	if plus {
		id += "+"
	}
	p.toks[p.pos] = id
	p.pos++
	return true
}

// licenseRef recognises ["DocumentRef-" idstring ":"] "LicenseRef-" idstring
// and returns it with canonical prefixes.
func licenseRef(t string) (string, bool) {
	var doc string
	if before, after, found := strings.Cut(t, ":"); found {
		id, ok := cutPrefixFold(before, "DocumentRef-")
		if !ok || !isIDString(id) {
			return "", false
		}
		doc = "DocumentRef-" + id + ":"
		t = after
	}
	id, ok := cutPrefixFold(t, "LicenseRef-")
	if !ok || !isIDString(id) {
		return "", false
	}
	return doc + "LicenseRef-" + id, true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

func isIDString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIDChar(s[i]) {
			return false
		}
	}
	return true
}

func (p *parser) render() string {
	var b strings.Builder
	for i, t := range p.toks {
		if i > 0 && t != ")" && p.toks[i-1] != "(" {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	return b.String()
}
