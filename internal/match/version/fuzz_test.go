package version

import "testing"

var allSchemes = []Scheme{Dpkg, APK, RPM, SemVer, NPM, Go, Cargo, PEP440, Maven, Gem, NuGet, Composer}

// FuzzParse checks that no scheme panics on any input and that what parses
// is ordered consistently: reflexive and antisymmetric.
func FuzzParse(f *testing.F) {
	for _, tc := range ascending {
		for i := 1; i < len(tc.vs); i++ {
			f.Add(tc.vs[i-1], tc.vs[i])
		}
	}
	for _, tc := range invalid {
		f.Add(tc.s, "1.0")
	}
	f.Add("1.0_alpha", "1.0")
	f.Add("go1.21rc", "v0.0.0-0")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, s := range allSchemes {
			va, errA := s.Parse(a)
			vb, errB := s.Parse(b)
			if errA != nil || errB != nil {
				continue
			}
			if c := va.Compare(va); c != 0 {
				t.Errorf("%s: %q compared with itself = %d", s.Name(), a, c)
			}
			if ab, ba := va.Compare(vb), vb.Compare(va); sign(ab) != -sign(ba) {
				t.Errorf("%s: Compare(%q, %q) = %d but Compare(%q, %q) = %d", s.Name(), a, b, ab, b, a, ba)
			}
		}
	})
}
