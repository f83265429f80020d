package license

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"MIT", "MIT", true},
		{"mit", "MIT", true},
		{" Apache-2.0 ", "Apache-2.0", true},
		{"gpl-2.0-or-later", "GPL-2.0-or-later", true},
		{"GPL-2.0", "GPL-2.0", true}, // deprecated, still an id
		{"GPL-2.0+", "", false},      // an expression, not an id
		{"MIT OR Apache-2.0", "", false},
		{"LicenseRef-foo", "", false},
		{"Apache 2.0", "", false},
		{"GPL-2", "", false},
		{"Classpath-exception-2.0", "", false}, // an exception is not a license
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := ID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestExpression(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"MIT", "MIT", true},
		{"mit", "MIT", true},
		{"GPL-2.0+", "GPL-2.0+", true},
		{"MIT OR Apache-2.0", "MIT OR Apache-2.0", true},
		{"mit or apache-2.0", "MIT OR Apache-2.0", true},
		{"(MIT  OR\tApache-2.0) AND BSD-3-Clause", "(MIT OR Apache-2.0) AND BSD-3-Clause", true},
		{"GPL-2.0-or-later WITH Classpath-exception-2.0", "GPL-2.0-or-later WITH Classpath-exception-2.0", true},
		{"GPL-2.0-only with classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0", true},
		{"LicenseRef-Custom.1", "LicenseRef-Custom.1", true},
		{"licenseref-custom", "LicenseRef-custom", true},
		{"DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2", "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2", true},
		{"((MIT))", "((MIT))", true},
		{"MIT And Apache-2.0", "", false}, // mixed-case operator
		{"MIT OR", "", false},
		{"OR MIT", "", false},
		{"MIT Apache-2.0", "", false},
		{"(MIT", "", false},
		{"MIT)", "", false},
		{"()", "", false},
		{"MIT WITH Apache-2.0", "", false}, // WITH needs an exception
		{"Classpath-exception-2.0", "", false},
		{"LicenseRef-", "", false},
		{"LicenseRef-a+", "", false},
		{"DocumentRef-:LicenseRef-a", "", false},
		{"Apache 2.0", "", false},
		{"GPL-2", "", false},
		{"BSD-like", "", false},
		{"MIT/X11", "", false},
		{"", "", false},
		{"   ", "", false},
		{strings.Repeat("(", maxDepth) + "MIT" + strings.Repeat(")", maxDepth), strings.Repeat("(", maxDepth) + "MIT" + strings.Repeat(")", maxDepth), true},
		{strings.Repeat("(", maxDepth+1) + "MIT" + strings.Repeat(")", maxDepth+1), "", false},
	}
	for _, tt := range tests {
		got, ok := Expression(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Expression(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIsLicenseRef(t *testing.T) {
	for in, want := range map[string]bool{
		"LicenseRef-x":                true,
		"DocumentRef-d:LicenseRef-x":  true,
		"LicenseRef-x y":              false,
		"MIT":                         false,
		"DocumentRef-d:LicenseRef-":   false,
		"DocumentRef-d:MIT":           false,
		"DocumentRef-d:LicenseRef-x:": false,
	} {
		if got := IsLicenseRef(in); got != want {
			t.Errorf("IsLicenseRef(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestCycloneDXEnumKnown checks that the embedded lists know every id the
// CycloneDX schema's license-id enum accepts, so a refresh of the lists can
// never silently drop an id.
func TestCycloneDXEnumKnown(t *testing.T) {
	path := filepath.Join("..", "testdata", "schemas", "spdx.schema.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var schema struct {
		Enum []string `json:"enum"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if len(schema.Enum) < 400 {
		t.Fatalf("%s has only %d ids", path, len(schema.Enum))
	}
	for _, id := range schema.Enum {
		if _, ok := lookup(licenseList, id); ok {
			continue
		}
		if _, ok := lookup(exceptionList, id); ok {
			continue
		}
		// The schema lists the deprecated "GPL-2.0+" style ids; SPDX
		// expressions spell them as the base id with the "+" operator.
		if base, ok := strings.CutSuffix(id, "+"); ok {
			if _, ok := lookup(licenseList, base); ok {
				continue
			}
		}
		t.Errorf("CycloneDX license id %q is not in licenses.txt or exceptions.txt", id)
	}
}

func TestListsWellFormed(t *testing.T) {
	for name, list := range map[string]string{"licenses.txt": licenseList, "exceptions.txt": exceptionList} {
		seen := map[string]bool{}
		for _, id := range strings.Fields(list) {
			if !isIDString(id) {
				t.Errorf("%s: %q is not an idstring", name, id)
			}
			if seen[strings.ToLower(id)] {
				t.Errorf("%s: %q twice", name, id)
			}
			seen[strings.ToLower(id)] = true
		}
		if len(seen) < 60 {
			t.Errorf("%s: only %d ids", name, len(seen))
		}
	}
}

func FuzzExpression(f *testing.F) {
	for _, s := range []string{"MIT", "(MIT OR Apache-2.0) AND BSD-3-Clause", "GPL-2.0+ WITH Classpath-exception-2.0",
		"DocumentRef-a:LicenseRef-b", "((", "MIT OR", "LicenseRef-x+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		canon, ok := Expression(s)
		if !ok {
			return
		}
		// The canonical form is itself valid and a fixed point.
		again, ok := Expression(canon)
		if !ok || again != canon {
			t.Fatalf("Expression(%q) = %q, but Expression(%q) = %q, %v", s, canon, canon, again, ok)
		}
		if id, ok := ID(s); ok && id != canon {
			t.Fatalf("ID(%q) = %q but Expression gives %q", s, id, canon)
		}
	})
}
