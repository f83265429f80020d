package token

import (
	"regexp"
	"testing"
)

// The scope grammar is hand-written (a regexp with {1,255} costs milliseconds
// to compile at start-up); these are the regexps it must agree with.
var (
	typeGrammar      = regexp.MustCompile(`^[a-z0-9]+(\([a-z0-9]+\))?$`)
	actionGrammar    = regexp.MustCompile(`^([a-z]+|\*)$`)
	otherNameGrammar = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,255}$`)
)

func TestScopeGrammar(t *testing.T) {
	inputs := []string{"", "repository", "repository(plugin)", "repository(", "repository()", "(plugin)",
		"Repository", "repo(plug)x", "registry", "a1", "*", "**", "pull", "pull,push", "PULL", "push*",
		"catalog", "a/b", "a..b", "a b", "x(y(z))", "é", "a-b_c.d/e"}
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'a'
	}
	inputs = append(inputs, string(long), string(long[:255]))
	for _, s := range inputs {
		if got, want := validType(s), typeGrammar.MatchString(s); got != want {
			t.Errorf("validType(%q) = %v, grammar says %v", s, got, want)
		}
		if got, want := validAction(s), actionGrammar.MatchString(s); got != want {
			t.Errorf("validAction(%q) = %v, grammar says %v", s, got, want)
		}
		if got, want := validOtherName(s), otherNameGrammar.MatchString(s); got != want {
			t.Errorf("validOtherName(%q) = %v, grammar says %v", s, got, want)
		}
	}
}

func FuzzScopeGrammar(f *testing.F) {
	for _, s := range []string{"repository(plugin)", "pull", "a/b", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validType(s), typeGrammar.MatchString(s); got != want {
			t.Errorf("validType(%q) = %v, grammar says %v", s, got, want)
		}
		if got, want := validAction(s), actionGrammar.MatchString(s); got != want {
			t.Errorf("validAction(%q) = %v, grammar says %v", s, got, want)
		}
		if got, want := validOtherName(s), otherNameGrammar.MatchString(s); got != want {
			t.Errorf("validOtherName(%q) = %v, grammar says %v", s, got, want)
		}
	})
}
