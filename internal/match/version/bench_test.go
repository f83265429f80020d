package version

import "testing"

// BenchmarkCompare measures one comparison of two parsed versions per
// scheme; matching compares far more often than it parses.
func BenchmarkCompare(b *testing.B) {
	pairs := map[Scheme][2]string{
		Dpkg:     {"1.1.1n-0+deb11u3", "1.1.1n-0+deb11u4"},
		APK:      {"1.1.1c-r0", "1.1.1d-r0"},
		RPM:      {"1.0.1-2.el9", "1.0.1-10.el9"},
		SemVer:   {"1.2.3-beta.2", "1.2.3-beta.11"},
		Go:       {"v0.0.0-20210226172049-e18ecbb05110", "0.17.0"},
		PEP440:   {"2.28.1", "2.31.0"},
		Maven:    {"2.13.4.2", "2.14.0-rc1"},
		Gem:      {"3.2.5", "3.2.10"},
		NuGet:    {"13.0.1", "13.0.3-beta.1"},
		Composer: {"1.0.0-RC1", "1.0.0"},
	}
	for s, p := range pairs {
		a, err := s.Parse(p[0])
		if err != nil {
			b.Fatal(err)
		}
		c, err := s.Parse(p[1])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Compare(c)
			}
		})
	}
}
