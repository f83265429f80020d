package osvfeed_test

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testpeers"
	"berth.dev/berth/internal/vulndb/source"
	"berth.dev/berth/internal/vulndb/source/osvfeed"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

// fixture is the OSV feed of the shared fixtures (testpeers.Shared).
const fixture = "vulndata/osv"

var harness = vulndbtest.Harness{
	Fixture:    fixture,
	New:        func(base string) source.Source { return osvfeed.New(base) },
	MinRecords: 5500,
	Known: []vulndbtest.Known{
		{ID: "GHSA-69ch-w2m2-3vjp", Alias: "CVE-2022-32149", Ecosystem: "Go", Package: "golang.org/x/text", Fixed: "0.3.8"},
		{ID: "GHSA-9wx4-h78v-vm56", Alias: "CVE-2024-35195", Ecosystem: "PyPI", Package: "requests", Fixed: "2.32.0"},
		{ID: "GHSA-4v7x-pqxf-cx7m", Ecosystem: "Go", Package: "golang.org/x/net/http2"},
		{ID: "PYSEC-2020-341", Ecosystem: "PyPI", Package: "jw.util"},
	},
}

func TestSuite(t *testing.T) { vulndbtest.Run(t, harness) }

func BenchmarkLoad(b *testing.B) { vulndbtest.Bench(b, harness) }

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

const goodRecord = `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`

func TestFolderWithoutEcosystemsTxt(t *testing.T) {
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "npm", "all.zip"), map[string]string{"X-1.json": goodRecord})
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755) // a folder without all.zip is not an ecosystem
	got, _, err := vulndbtest.Load(context.Background(), osvfeed.New(dir), t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 || got.Records["X-1"] == nil {
		t.Fatalf("records = %v, want X-1", got.Records)
	}
}

func TestEcosystemsTxtOverHTTPIsRequired(t *testing.T) {
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "npm", "all.zip"), map[string]string{"X-1.json": goodRecord})
	srv := vulndbtest.NewServer(t, dir)
	_, _, err := vulndbtest.Load(context.Background(), osvfeed.New(srv.URL), t.TempDir(), 0)
	if err == nil || !strings.Contains(err.Error(), "ecosystems.txt") {
		t.Fatalf("err = %v, want one about ecosystems.txt", err)
	}
}

func TestBadRecordIsSkipped(t *testing.T) {
	dir := t.TempDir()
	writeZip(t, filepath.Join(dir, "npm", "all.zip"), map[string]string{
		"X-1.json":   goodRecord,
		"BAD-1.json": `{"id": "BAD-1", "affected": [`,
		"README.md":  "not a record",
	})
	got, _, err := vulndbtest.Load(context.Background(), osvfeed.New(dir), t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 || got.Skipped["invalid OSV JSON"] != 1 {
		t.Fatalf("records %d, skipped %v; want 1 record and 1 invalid JSON", len(got.Records), got.Skipped)
	}
}

func TestCorruptZipFails(t *testing.T) {
	src, err := os.ReadFile(testpeers.Shared(t, fixture, "npm", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"truncated": src[:len(src)/2],
		"flipped": func() []byte {
			b := bytes.Clone(src)
			// Inside the first entry's compressed data: the CRC check
			// (or inflate) must notice.
			b[200] ^= 0xff
			return b
		}(),
		"empty": {},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "npm"), 0o755)
			os.WriteFile(filepath.Join(dir, "npm", "all.zip"), data, 0o644)
			_, _, err := vulndbtest.Load(context.Background(), osvfeed.New(dir), t.TempDir(), 0)
			if err == nil {
				t.Fatal("Load of a corrupt all.zip succeeded")
			}
		})
	}
}

func TestEcosystemFilter(t *testing.T) {
	s := osvfeed.New(testpeers.Shared(t, fixture))
	s.Ecosystems = []string{"npm"}
	got, _, err := vulndbtest.Load(context.Background(), s, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range got.Records {
		if v.Affected[0].Package.Ecosystem != "npm" {
			t.Errorf("%s: ecosystem %s outside the filter", id, v.Affected[0].Package.Ecosystem)
		}
	}
	if len(got.Records) != 11 {
		t.Errorf("got %d npm records, want the fixture's 11", len(got.Records))
	}
}
