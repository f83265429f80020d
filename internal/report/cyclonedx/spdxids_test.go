package cyclonedx

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/internal/schematest"
)

// TestSPDXIDsAreTheSchemas keeps spdx-ids.txt equal to the enum of the
// stored CycloneDX spdx.schema.json.
func TestSPDXIDsAreTheSchemas(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(schematest.SchemaDir(), "spdx.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Enum []string `json:"enum"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(spdxIDs)
	slices.Sort(got)
	slices.Sort(schema.Enum)
	if !slices.Equal(got, schema.Enum) {
		t.Errorf("spdx-ids.txt has %d ids, the schema %d", len(got), len(schema.Enum))
	}
}

// TestLicenseIDsNewerThanTheSchema: Debian copyright files name licenses
// (Kazlib, SMAIL-GPL) that the SPDX list knows and CycloneDX 1.6's schema
// does not; they are written as names so the document stays valid.
func TestLicenseIDsNewerThanTheSchema(t *testing.T) {
	inv := &inventory.Inventory{Packages: []inventory.Package{{
		Ecosystem: inventory.Deb, Name: "libkaz", Version: "1", Analyzer: "dpkg",
		Licenses: []string{"Kazlib", "MIT", "SMAIL-GPL"},
	}, {
		Ecosystem: inventory.Deb, Name: "alone", Version: "1", Analyzer: "dpkg", Licenses: []string{"Artistic-dist"},
	}}}
	out := encode(t, inv)
	doc := checkDocument(t, out, inv)
	got := map[string]string{}
	for _, c := range *doc.Components {
		got[c.Name] = describeLicenses(c.Licenses)
	}
	if got["libkaz"] != "name:Kazlib id:MIT name:SMAIL-GPL" || got["alone"] != "name:Artistic-dist" {
		t.Errorf("licenses %v", got)
	}
}

// TestSPDXIDsSorted: schemaKnowsID binary-searches spdx-ids.txt, which
// must therefore be in byte order, one id a line, each once.
func TestSPDXIDsSorted(t *testing.T) {
	if !strings.HasSuffix(spdxIDs, "\n") {
		t.Fatal("spdx-ids.txt does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(spdxIDs, "\n"), "\n")
	for i, l := range lines {
		if l == "" || strings.TrimSpace(l) != l || strings.ContainsAny(l, " \t\r") {
			t.Errorf("line %d: %q is not one id", i+1, l)
		}
		if i > 0 && lines[i-1] >= l {
			t.Errorf("line %d: %q after %q: sort the file with LC_ALL=C sort", i+1, l, lines[i-1])
		}
	}
}

func TestSchemaKnowsID(t *testing.T) {
	known := map[string]bool{}
	for _, id := range strings.Fields(spdxIDs) {
		known[id] = true
	}
	probes := []string{"", "\n", "MIT\n", "\nMIT", "0", "ZZZ", "zPL-2.1", "Kazlib", "SMAIL-GPL", "Artistic-dist", "GPL-2"}
	for id := range known {
		probes = append(probes, id, strings.ToLower(id), strings.ToUpper(id), id[1:], id[:len(id)-1], id+"+", id+" ", " "+id, "A"+id)
	}
	for _, p := range probes {
		if got := schemaKnowsID(p); got != known[p] {
			t.Errorf("schemaKnowsID(%q) = %v, want %v", p, got, known[p])
		}
	}
	if n := testing.AllocsPerRun(100, func() { schemaKnowsID("Apache-2.0"); schemaKnowsID("Kazlib") }); n != 0 {
		t.Errorf("schemaKnowsID allocates %v times", n)
	}
}

func BenchmarkSchemaKnowsID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		schemaKnowsID("Apache-2.0")
		schemaKnowsID("Kazlib")
	}
}
