package analyzertest

import (
	"fmt"
	"sort"
	"testing"

	"berth.dev/berth/internal/inventory"
)

// FuzzParse seeds f with seeds and checks that parse never panics, never
// returns packages together with an error, and never returns a package
// without a name or ecosystem.
func FuzzParse(f *testing.F, parse inventory.ParseFunc, seeds ...[]byte) {
	fuzzParse(f, parse, false, seeds)
}

// FuzzParsePartial is FuzzParse for a parser that skips the entries it
// cannot read and returns the others with an error naming them.
func FuzzParsePartial(f *testing.F, parse inventory.ParseFunc, seeds ...[]byte) {
	fuzzParse(f, parse, true, seeds)
}

func fuzzParse(f *testing.F, parse inventory.ParseFunc, partial bool, seeds [][]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parse(data, "/x", "fuzz")
		if err != nil && pkgs != nil && !partial {
			t.Fatal("packages returned with an error")
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Ecosystem == "" {
				t.Fatalf("package without a name or ecosystem: %+v", p)
			}
		}
	})
}

// Summary lists packages as "name@version", with " dev" for dev-only
// ones, " local" for those not from the registry and " -> a,b" for their
// dependencies, sorted: a compact form to
// compare in tests.
func Summary(pkgs []inventory.Package) []string {
	out := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		s := p.Name + "@" + p.Version
		if p.Dev {
			s += " dev"
		}
		if p.Local {
			s += " local"
		}
		if len(p.DependsOn) > 0 {
			s += fmt.Sprintf(" -> %v", p.DependsOn)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
