package policy

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Glob is an image pattern as policy-controller writes them: "**" matches
// anything, "*" anything but "/", "?" one character but "/". A pattern
// without a registry names Docker Hub ("nginx" is
// "index.docker.io/library/nginx"), as image references do.
type Glob struct {
	Pattern string
	Line    int
	norm    string
}

// UnmarshalYAML implements yaml.Unmarshaler for the {glob: PATTERN} form.
func (g *Glob) UnmarshalYAML(n *yaml.Node) error {
	var v struct {
		Glob Text `yaml:"glob"`
	}
	if n.Kind == yaml.ScalarNode {
		v.Glob = Text{S: n.Value, Line: n.Line}
	} else {
		// Only "glob" is allowed here; checked by hand since this decode
		// is not the strict one.
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "glob" {
				return fmt.Errorf("line %d: field %s not found in an image pattern (want glob)", n.Content[i].Line, k)
			}
		}
		if err := n.Decode(&v); err != nil {
			return err
		}
	}
	if v.Glob.S == "" {
		return fmt.Errorf("line %d: empty image glob", n.Line)
	}
	*g = NewGlob(v.Glob.S)
	g.Line = n.Line
	return nil
}

// NewGlob prepares a pattern.
func NewGlob(pattern string) Glob {
	return Glob{Pattern: pattern, norm: normalizeGlob(pattern)}
}

func normalizeGlob(p string) string {
	if strings.HasPrefix(p, "*") {
		return p
	}
	first, rest, found := strings.Cut(p, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return p
	}
	if !found {
		rest = p
		return "index.docker.io/library/" + rest
	}
	return "index.docker.io/" + p
}

// Match reports whether the repository name (registry/path) or the full
// reference matches.
func (g Glob) Match(repository, reference string) bool {
	return globMatch(g.norm, repository) || (reference != "" && globMatch(g.norm, reference))
}

// globMatch matches s against p: "**" any run, "*" any run without "/",
// "?" one character other than "/". Dynamic programming over (pattern,
// name) positions, so no pattern takes more than len(p)·len(s) steps
// (project administrators write patterns; clients choose names).
func globMatch(p, s string) bool {
	// ok[j]: p[:i] matches s[:j], for the current i.
	ok := make([]bool, len(s)+1)
	next := make([]bool, len(s)+1)
	ok[0] = true
	for i := 0; i < len(p); {
		clear(next)
		switch {
		case strings.HasPrefix(p[i:], "**"):
			run := false
			for j := 0; j <= len(s); j++ {
				run = run || ok[j]
				next[j] = run
			}
			for i < len(p) && p[i] == '*' {
				i++
			}
		case p[i] == '*':
			run := false
			for j := 0; j <= len(s); j++ {
				if j > 0 && s[j-1] == '/' {
					run = false
				}
				run = run || ok[j]
				next[j] = run
			}
			i++
		default:
			for j := 1; j <= len(s); j++ {
				c := s[j-1]
				next[j] = ok[j-1] && ((p[i] == '?' && c != '/') || p[i] == c)
			}
			i++
		}
		ok, next = next, ok
	}
	return ok[len(s)]
}
