// Package token implements Docker registry token auth's tokens: the scope
// grammar clients ask with ("repository:team-a/app:pull,push",
// "registry:catalog:*"), short-lived ES256 JWTs carrying the granted access
// list, the signing key kept in the data directory, and a cache of
// verified tokens so that a request pays for a signature check once per
// token, not once per request.
package token

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
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

var (
	// A resource type with an optional class, as docker sends
	// "repository(plugin)".
	typePattern      = regexp.MustCompile(`^[a-z0-9]+(\([a-z0-9]+\))?$`)
	actionPattern    = regexp.MustCompile(`^([a-z]+|\*)$`)
	otherNamePattern = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,255}$`)
	// The distribution spec's repository name grammar.
	repositoryPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
)

// ValidRepository reports whether name matches the distribution spec's
// repository name grammar (which leaves no room for "..", "%2e" or "//").
func ValidRepository(name string) bool {
	return len(name) <= 255 && repositoryPattern.MatchString(name)
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
	if !typePattern.MatchString(s.Type) {
		return Scope{}, fmt.Errorf("scope %q: invalid resource type", item)
	}
	for _, a := range strings.Split(item[last+1:], ",") {
		if !actionPattern.MatchString(a) {
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
		if !otherNamePattern.MatchString(s.Name) || strings.Contains(s.Name, "..") {
			return Scope{}, fmt.Errorf("scope %q: invalid name", item)
		}
	}
	return s, nil
}
