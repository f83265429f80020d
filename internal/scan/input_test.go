package scan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/inventoryjson"
	"berth.dev/berth/internal/report/reportjson"
)

func sampleInventory() *inventory.Inventory {
	return &inventory.Inventory{
		Source: "app:1", Layers: []inventory.Layer{{DiffID: "sha256:1111"}},
		Packages: []inventory.Package{{Ecosystem: inventory.NPM, Name: "lodash", Version: "4.17.15", PURL: "pkg:npm/lodash@4.17.15", Layer: "sha256:1111", Analyzer: "npm-lock"}},
	}
}

func TestReadStored(t *testing.T) {
	var rep bytes.Buffer
	stored := &match.Report{SchemaVersion: match.ReportSchemaVersion, Inventory: *sampleInventory(),
		Findings: []match.Finding{{ID: "CVE-2020-8203", Severity: match.SeverityHigh}}}
	if err := reportjson.Encode(&rep, stored); err != nil {
		t.Fatal(err)
	}
	r, err := ReadStored(bytes.NewReader(rep.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Inventory.Packages) != 1 || len(r.Findings) != 1 || r.Findings[0].ID != "CVE-2020-8203" {
		t.Errorf("report read back as %+v", r)
	}

	var inv bytes.Buffer
	if err := inventoryjson.Encode(&inv, sampleInventory()); err != nil {
		t.Fatal(err)
	}
	r, err = ReadStored(&inv)
	if err != nil {
		t.Fatal(err)
	}
	if r.SchemaVersion != match.ReportSchemaVersion || len(r.Inventory.Packages) != 1 || r.Findings == nil || len(r.Findings) != 0 {
		t.Errorf("inventory read back as %+v", r)
	}
}

func TestReadStoredRejectsBadInput(t *testing.T) {
	newer, _ := json.Marshal(map[string]any{"schemaVersion": match.ReportSchemaVersion + 1, "inventory": map[string]any{}})
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "", "not JSON"},
		{"garbage", "\x00\x01", "not JSON"},
		{"array", "[]", "not JSON"},
		{"CycloneDX", `{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`, "not a berth report"},
		{"report without schema", `{"inventory":{"packages":[]}}`, "no schemaVersion"},
		{"newer schema", string(newer), "schema"},
		{"schema zero", `{"schemaVersion":0,"inventory":{}}`, "schema 0"},
		{"wrong types", `{"schemaVersion":1,"inventory":{"packages":"lodash"}}`, "stored report"},
		{"two documents", `{"packages":[]} {"packages":[]}`, "not JSON"},
	}
	for _, tc := range tests {
		_, err := ReadStored(strings.NewReader(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func FuzzReadStored(f *testing.F) {
	var rep bytes.Buffer
	reportjson.Encode(&rep, &match.Report{SchemaVersion: 1, Inventory: *sampleInventory(), Findings: []match.Finding{{ID: "X"}}})
	f.Add(rep.Bytes())
	var inv bytes.Buffer
	inventoryjson.Encode(&inv, sampleInventory())
	f.Add(inv.Bytes())
	f.Add([]byte(`{"schemaVersion":1,"inventory":{"packages":null},"findings":[{"package":{}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadStored(bytes.NewReader(data))
		if err != nil {
			if r != nil {
				t.Fatal("report and error both returned")
			}
			return
		}
		if r.SchemaVersion < 1 || r.SchemaVersion > match.ReportSchemaVersion {
			t.Fatalf("accepted schema %d", r.SchemaVersion)
		}
		// Whatever was accepted can be written back and read again.
		var out bytes.Buffer
		if err := reportjson.Encode(&out, r); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadStored(&out); err != nil {
			t.Fatalf("re-read: %v", err)
		}
	})
}
