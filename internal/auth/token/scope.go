// Package token implements Docker registry token auth's tokens: the scope
// grammar clients ask with ("repository:team-a/app:pull,push",
// "registry:catalog:*"), short-lived ES256 JWTs carrying the granted access
// list, the signing key kept in the data directory, and a cache of
// verified tokens so that a request pays for a signature check once per
// token, not once per request.
package token

import (
	"fmt"
	"slices"
	"strings"

	"berth.dev/berth/internal/registry/access"
)

// Scope types and actions of the grammar.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
	CatalogName    = "catalog"
	ActionPull     = "pull"
	ActionPush     = "push"
	ActionDelete   = "delete"
	ActionAll      = "*"
)

// Scope is one requested or granted resource: the JWT's access entry and
// the token endpoint's scope parameter share it.
type Scope struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (s Scope) String() string { return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",") }

// maxScopes bounds the scopes one token request may carry.
const maxScopes = 64

// ValidRepository reports whether name matches the distribution spec's
// repository name grammar (which leaves no room for "..", "%2e" or "//"),
// exactly as the registry reads it.
func ValidRepository(name string) bool { return access.ValidRepository(name) }

// validType reports whether s is a resource type with an optional class, as
// docker sends "repository(plugin)": [a-z0-9]+(\([a-z0-9]+\))?
func validType(s string) bool {
	name, class, hasClass := strings.Cut(s, "(")
	if !lowerAlnum(name) {
		return false
	}
	if !hasClass {
		return true
	}
	class, ok := strings.CutSuffix(class, ")")
	return ok && lowerAlnum(class)
}

// validAction reports whether s is an action word or "*".
func validAction(s string) bool {
	if s == "*" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return s != ""
}

// validOtherName reports whether s is a name of a non-repository resource:
// [A-Za-z0-9._/-]{1,255}.
func validOtherName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return false
		}
	}
	return true
}

func lowerAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return s != ""
}

// ParseScopes parses scope parameters. Each value may hold several scopes
// separated by spaces (OAuth2's form), and GET requests repeat the
// parameter (Docker's). A malformed scope is an error: it cannot be
// trimmed to a meaning.
func ParseScopes(values []string) ([]Scope, error) {
	var out []Scope
	for _, v := range values {
		for _, item := range strings.Fields(v) {
			if len(out) == maxScopes {
				return nil, fmt.Errorf("more than %d scopes", maxScopes)
			}
			s, err := parseScope(item)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func parseScope(item string) (Scope, error) {
	first, last := strings.IndexByte(item, ':'), strings.LastIndexByte(item, ':')
	if first < 0 || first == last {
		return Scope{}, fmt.Errorf("scope %q: want type:name:actions", item)
	}
	s := Scope{Type: item[:first], Name: item[first+1 : last]}
	if !validType(s.Type) {
		return Scope{}, fmt.Errorf("scope %q: invalid resource type", item)
	}
	for _, a := range strings.Split(item[last+1:], ",") {
		if !validAction(a) {
			return Scope{}, fmt.Errorf("scope %q: invalid action %q", item, a)
		}
		if !slices.Contains(s.Actions, a) {
			s.Actions = append(s.Actions, a)
		}
	}
	switch s.Type {
	case TypeRepository:
		if !ValidRepository(s.Name) {
			return Scope{}, fmt.Errorf("scope %q: invalid repository name", item)
		}
	case TypeRegistry:
		if s.Name != CatalogName {
			return Scope{}, fmt.Errorf("scope %q: the registry resource is %q", item, CatalogName)
		}
	default:
		// Types berth grants nothing for are trimmed later; their names
		// must still be plain, so that nothing odd reaches a log line.
		if !validOtherName(s.Name) || strings.Contains(s.Name, "..") {
			return Scope{}, fmt.Errorf("scope %q: invalid name", item)
		}
	}
	return s, nil
}
