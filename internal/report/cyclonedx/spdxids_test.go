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
