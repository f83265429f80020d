package secret

import (
	"regexp/syntax"
	"strings"
)

// pathRegexp is a path regexp with a cheap test first: the literals, one
// of which every match contains (lower case). Most paths contain none,
// and a strings.Contains is ~100× cheaper than running the regexp.
type pathRegexp struct {
	*lazyRegexp
	need []string // nil: no such set is known, always run the regexp
}

func newPathRegexp(src string) *pathRegexp {
	p := &pathRegexp{lazyRegexp: newLazy(src)}
	if re, err := syntax.Parse(src, syntax.Perl); err == nil {
		p.need = required(re.Simplify())
	}
	return p
}

func (p *pathRegexp) mayMatch(lower string) bool {
	if p.need == nil {
		return true
	}
	for _, n := range p.need {
		if strings.Contains(lower, n) {
			return true
		}
	}
	return false
}

// required returns literals of which every match of re contains one,
// lowercased, or nil when it cannot tell.
func required(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return nil
		}
		return []string{strings.ToLower(string(re.Rune))}
	case syntax.OpCapture:
		return required(re.Sub[0])
	case syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
		return nil
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			r := required(s)
			if r == nil {
				return nil
			}
			out = append(out, r...)
		}
		return out
	case syntax.OpConcat:
		// Any child's set will do; the one whose shortest literal is
		// longest rejects the most paths.
		var best []string
		bestLen := 0
		for _, s := range re.Sub {
			r := required(s)
			if r == nil {
				continue
			}
			shortest := len(r[0])
			for _, x := range r {
				shortest = min(shortest, len(x))
			}
			if shortest > bestLen {
				best, bestLen = r, shortest
			}
		}
		return best
	}
	return nil
}
