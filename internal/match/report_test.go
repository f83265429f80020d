package match

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/osv"
)

func loadGHSA(t *testing.T, eco, id string) *osv.Vulnerability {
	t.Helper()
	data, err := os.ReadFile(vulndata(t, "osv-ghsa", eco, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var v osv.Vulnerability
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// TestReportGolden pins the JSON of a Report, the document the server
// stores and the report encoders read. Run with -update after an intended
// change.
func TestReportGolden(t *testing.T) {
	src := newMemSource(debianAdvisory(t, "DSA", "DSA-5343-1"), loadGHSA(t, "npm", "GHSA-p6mc-m468-83gw"))
	m := New(src)
	m.now = func() time.Time { return time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC) }
	inv := inventory.Inventory{
		Source:   "oci-archive:app.tar",
		Digest:   "sha256:1111111111111111111111111111111111111111111111111111111111111111",
		Distro:   &inventory.Distro{ID: "debian", VersionID: "11", Codename: "bullseye"},
		Layers:   []inventory.Layer{{DiffID: "sha256:aaaa"}, {DiffID: "sha256:bbbb"}},
		Packages: []inventory.Package{debPkg("libssl1.1", "1.1.1n-0+deb11u3", "openssl", "1.1.1n-0+deb11u3"), pkg(inventory.NPM, "lodash", "4.17.15")},
	}
	inv.Packages[1].Layer = "sha256:bbbb"
	r, err := m.Match(context.Background(), inv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden.Check(t, filepath.Join("testdata", "report.golden.json"), got)
}
