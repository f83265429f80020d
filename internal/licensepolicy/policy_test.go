package licensepolicy

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
)

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Class
	}{
		{"MIT", Permissive},
		{"mit", Permissive},
		{"Expat", Permissive},
		{"Apache-2.0", Permissive},
		{"Apache 2.0", Permissive},
		{"BSD-3-clause", Permissive},
		{"ISC", Permissive},
		{"public-domain", Permissive},
		{"LGPL-2.1+", WeakCopyleft},
		{"LGPL-2.1-only", WeakCopyleft},
		{"MPL-2.0", WeakCopyleft},
		{"EPL-2.0", WeakCopyleft},
		{"GPL-2+", StrongCopyleft},
		{"GPL-3.0-or-later", StrongCopyleft},
		{"GPL-2.0-only WITH Classpath-exception-2.0", WeakCopyleft},
		{"AGPL-3.0-only", NetworkCopyleft},
		{"SSPL-1.0", NetworkCopyleft},
		{"MIT OR GPL-2.0-only", Permissive},
		{"MIT AND GPL-2.0-only", StrongCopyleft},
		{"(MIT OR AGPL-3.0-only) AND LGPL-2.1-only", WeakCopyleft},
		{"MITNFA", Unknown},
		{"GPL-2+ AND other", StrongCopyleft},
		{"MIT AND other", Unknown},
		{"Proprietary", Unknown},
		{"", Unknown},
		{"((((", Unknown},
	} {
		if got := Classify(tt.in); got != tt.want {
			t.Errorf("Classify(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	inv := &inventory.Inventory{Packages: []inventory.Package{
		{Ecosystem: "npm", Name: "a", Version: "1", Licenses: []string{"MIT"}},
		{Ecosystem: "npm", Name: "b", Version: "1", Licenses: []string{"AGPL-3.0-only"}},
		{Ecosystem: "npm", Name: "c", Version: "1", Licenses: []string{"MIT OR AGPL-3.0-only"}},
		{Ecosystem: "deb", Name: "d", Version: "1", Licenses: []string{"GPL-2+", "BSD-3-clause"}},
		{Ecosystem: "npm", Name: "e", Version: "1"},
	}}
	for _, tt := range []struct {
		name        string
		allow, deny []string
		want        string // violating packages
	}{
		{"none", nil, nil, ""},
		{"deny an id", nil, []string{"AGPL-3.0-only"}, "b"},
		{"deny a class", nil, []string{"network-copyleft,strong-copyleft"}, "b d"},
		{"allow list", []string{"MIT", "BSD-3-Clause"}, nil, "b d e"},
		{"allow a class", []string{"permissive"}, nil, "b d e"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range Check(inv, p) {
				if f.Violation != "" {
					got = append(got, f.Name)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("violations %v, want %s", got, tt.want)
			}
		})
	}
	if _, err := ParsePolicy([]string{"MIT", "Frobnicate-1.0"}, nil); err == nil || !strings.Contains(err.Error(), "Frobnicate-1.0") {
		t.Errorf("unknown id: %v", err)
	}
	fs := Check(inv, Policy{})
	if fs[1].Severity != "CRITICAL" || fs[0].Severity != "LOW" || fs[4].Class != Unknown || fs[4].Severity != "UNKNOWN" {
		t.Errorf("%+v", fs)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add("(MIT OR Apache-2.0) AND GPL-2.0-only WITH Classpath-exception-2.0")
	f.Add("((((((((((a")
	f.Fuzz(func(t *testing.T, s string) {
		c := Classify(s)
		if rank(c) < 0 {
			t.Fatalf("class %q", c)
		}
		p := Policy{Deny: []string{"GPL-2.0-only"}, Allow: []string{"permissive"}}
		p.judge(parse(s))
	})
}
