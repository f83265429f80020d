package policy

import "strings"

// licenseAcceptable reports whether an SPDX license expression can be met
// without a denied license: "A OR B" needs one acceptable side, "A AND B"
// both; "X WITH exception" is X. A string that is not an expression (a
// free-text license) is judged as one identifier.
func licenseAcceptable(expr string, denied func(string) bool) bool {
	toks := licenseTokens(expr)
	p := &licenseParser{toks: toks, denied: denied}
	ok := p.or()
	if p.pos != len(toks) || p.bad {
		return !denied(expr)
	}
	return ok
}

func licenseTokens(s string) []string {
	var out []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch r {
		case '(', ')':
			flush()
			out = append(out, string(r))
		case ' ', '\t', '\n':
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

type licenseParser struct {
	toks   []string
	pos    int
	bad    bool
	denied func(string) bool
}

func (p *licenseParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *licenseParser) or() bool {
	ok := p.and()
	for strings.EqualFold(p.peek(), "OR") {
		p.pos++
		right := p.and()
		ok = ok || right
	}
	return ok
}

func (p *licenseParser) and() bool {
	ok := p.atom()
	for strings.EqualFold(p.peek(), "AND") {
		p.pos++
		right := p.atom()
		ok = ok && right
	}
	return ok
}

func (p *licenseParser) atom() bool {
	t := p.peek()
	switch {
	case t == "(":
		p.pos++
		ok := p.or()
		if p.peek() != ")" {
			p.bad = true
			return false
		}
		p.pos++
		return ok
	case t == "" || t == ")" || strings.EqualFold(t, "AND") || strings.EqualFold(t, "OR") || strings.EqualFold(t, "WITH"):
		p.bad = true
		return false
	}
	p.pos++
	if strings.EqualFold(p.peek(), "WITH") {
		p.pos += 2 // the exception names no license of its own
	}
	return !p.denied(strings.TrimSuffix(t, "+"))
}
