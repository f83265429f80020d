package secret

import (
	"regexp/syntax"
	"strings"
)

// Most rules are one of two shapes, and knowing the shape lets the
// scanner test a keyword hit in a few byte comparisons instead of
// running a regexp over the text around it (in a file dense with "key",
// "token" or "ey", that is the difference between ~20 and ~200 MB/s).
//
//   - assignment rules, gitleaks' template
//     (?i)[\w.-]{0,50}?(?:NAMES)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)...:
//     a match has an operator shortly after its name; a hit with none
//     after it is dropped before any regexp runs. Used only when every
//     alternative of NAMES holds one of the rule's keywords, so that a
//     match always has a hit inside its name.
//   - prefix rules, whose every match begins with one of the rule's
//     keywords (ghp_…, AKIA…, eyJ…): the regexp runs anchored at the hit.
const templateHead = `(?i)[\w.-]{0,50}?(?:`

const templateOperator = `(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)`

// assignmentShape reports whether a rule's regexp is the template and its
// names all hold a keyword.
func assignmentShape(src string, keywords []string) bool {
	if !strings.HasPrefix(src, templateHead) {
		return false
	}
	// A top-level alternative (atlassian's "…template…|\b(ATATT3…)")
	// matches without any assignment.
	if re, err := syntax.Parse(src, syntax.Perl); err != nil || re.Op == syntax.OpAlternate {
		return false
	}
	i, depth := len(templateHead), 1
	for depth > 0 {
		if i >= len(src) {
			return false
		}
		switch src[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
		}
		i++
	}
	names, rest := src[len(templateHead):i-1], src[i:]
	if !strings.HasPrefix(rest, templateOperator) {
		return false
	}
	// Reduce the names to plain words: a class keeps its first member,
	// groups and optional marks go.
	var b strings.Builder
	for j := 0; j < len(names); j++ {
		switch c := names[j]; c {
		case '[':
			end := strings.IndexByte(names[j:], ']')
			if end < 2 {
				return false
			}
			b.WriteByte(lower(names[j+1]))
			j += end
		case '(':
			if strings.HasPrefix(names[j:], "(?-i:") || strings.HasPrefix(names[j:], "(?i:") || strings.HasPrefix(names[j:], "(?:") {
				j += strings.IndexByte(names[j:], ':')
			}
		case ')', '?':
		case '\\':
			if j+1 < len(names) {
				b.WriteByte(lower(names[j+1]))
				j++
			}
		default:
			b.WriteByte(lower(c))
		}
	}
	for _, alt := range strings.Split(b.String(), "|") {
		ok := false
		for _, k := range keywords {
			ok = ok || strings.Contains(alt, k)
		}
		if !ok {
			return false
		}
	}
	return true
}

// assignmentFollows is the assignment precheck: after the keyword ending
// at end, within a name's tail and some quotes and spaces, an operator,
// then (after at most 5 quotes, spaces or '=') a value of at least
// minValue characters. Every template rule's secret is at least that
// long; "auth ok, key cache" is not an assignment.
func assignmentFollows(data []byte, end int) bool {
	const minValue = 6
	// The rest of the name and the template's [ \t\w.-]{0,20}, then
	// [\s'"]{0,3}: no line break before the quotes and spaces.
	i, limit := end, min(len(data), end+64)
	for i < limit && (data[i] == ' ' || data[i] == '\t' || data[i] == '.' || data[i] == '-' || isWord(data[i])) {
		i++
	}
	for n := 0; n < 3 && i < len(data) && (isSpace(data[i]) || data[i] == '\'' || data[i] == '"'); n++ {
		i++
	}
	if i >= len(data) || !isOperator(data[i]) {
		return false
	}
	for i < len(data) && isOperator(data[i]) {
		i++
	}
	for skipped := 0; i < len(data) && skipped < 5 && (isSpace(data[i]) || data[i] == '\'' || data[i] == '"' || data[i] == '`' || data[i] == '='); skipped++ {
		i++
	}
	n := 0
	for ; i < len(data) && n < minValue; i++ {
		c := data[i]
		if isSpace(c) || c == '\'' || c == '"' || c == '`' || c == ';' || c == ',' {
			break
		}
		n++
	}
	return n >= minValue
}

func isOperator(c byte) bool {
	return c == '=' || c == '>' || c == ':' || c == '|' || c == '?' || c == ','
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWord(c byte) bool {
	return c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// prefixShape reports whether every match of src begins with one of the
// keywords, and whether it first asserts a word boundary (which the
// anchored run checks by hand: it cannot see the byte before the hit).
func prefixShape(src string, keywords []string) (ok, boundary bool) {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return false, false
	}
	re = re.Simplify()
	if re.Op == syntax.OpConcat && len(re.Sub) > 0 && re.Sub[0].Op == syntax.OpWordBoundary {
		boundary = true
		re = &syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[1:], Flags: re.Flags}
	}
	return startsWithKeyword(re, keywords), boundary
}

func startsWithKeyword(re *syntax.Regexp, keywords []string) bool {
	switch re.Op {
	case syntax.OpCapture:
		return startsWithKeyword(re.Sub[0], keywords)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !startsWithKeyword(s, keywords) {
				return false
			}
		}
		return len(re.Sub) > 0
	case syntax.OpConcat:
		// The literal start: consecutive literals (possibly split by the
		// parser) joined.
		var lit strings.Builder
		for _, s := range re.Sub {
			if s.Op != syntax.OpLiteral {
				if lit.Len() == 0 {
					return startsWithKeyword(s, keywords)
				}
				break
			}
			lit.WriteString(string(s.Rune))
		}
		return hasKeywordPrefix(lit.String(), keywords)
	case syntax.OpLiteral:
		return hasKeywordPrefix(string(re.Rune), keywords)
	}
	return false
}

func hasKeywordPrefix(lit string, keywords []string) bool {
	l := strings.ToLower(lit)
	for _, k := range keywords {
		if strings.HasPrefix(l, k) {
			return true
		}
	}
	return false
}
