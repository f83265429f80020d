package analyzers

import "testing"

// The analyzer names key the layer cache and label every package, so two
// analyzers must never share one.
func TestAllNamesUniqueAndVersioned(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range All() {
		if a.Name() == "" {
			t.Errorf("%T has an empty name", a)
		}
		if seen[a.Name()] {
			t.Errorf("analyzer name %q used twice", a.Name())
		}
		seen[a.Name()] = true
		if a.Version() < 1 {
			t.Errorf("%s: version %d, want ≥ 1", a.Name(), a.Version())
		}
	}
}
