package vulndb

import (
	"encoding/json"
	"testing"
	"time"

	"berth.dev/berth/internal/osv"
)

func sampleRecords() []*osv.Vulnerability {
	t0 := time.Date(2024, 10, 4, 12, 30, 15, 123456789, time.UTC)
	return []*osv.Vulnerability{
		{
			SchemaVersion: "1.6.0",
			ID:            "GHSA-xxxx",
			Modified:      t0,
			Published:     t0.Add(-time.Hour),
			Aliases:       []string{"CVE-2024-1", "PYSEC-2024-9"},
			Upstream:      []string{"CVE-2024-1"},
			Related:       []string{"GO-2024-1"},
			Summary:       "Something bad ✓",
			Severity:      []osv.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
			Affected: []osv.Affected{{
				Package:  osv.Package{Ecosystem: "PyPI", Name: "requests", PURL: "pkg:pypi/requests"},
				Severity: []osv.Severity{{Type: "CVSS_V4", Score: "CVSS:4.0/AV:N"}},
				Ranges: []osv.Range{
					{Type: "ECOSYSTEM", Events: []osv.Event{{Introduced: "0"}, {Fixed: "2.32.0"}}, DatabaseSpecific: json.RawMessage(`{"x":1}`)},
					{Type: "GIT", Repo: "https://github.com/psf/requests", Events: []osv.Event{{Introduced: "abc"}, {LastAffected: "def"}, {Limit: "ghi"}}},
				},
				Versions:          []string{"2.31.0", "2.30.0"},
				EcosystemSpecific: json.RawMessage(`{"imports":[{"path":"x"}]}`),
				DatabaseSpecific:  json.RawMessage(`{"source":"y"}`),
			}},
			References:       []osv.Reference{{Type: "ADVISORY", URL: "https://example.com/a"}},
			DatabaseSpecific: json.RawMessage(`{"severity":"HIGH","cwe_ids":["CWE-200"]}`),
		},
		{ID: "MIN-1", Affected: []osv.Affected{{Package: osv.Package{Ecosystem: "npm", Name: "x"}, Versions: []string{"1.0.0"}}}},
		{ID: "NEG-TIME", Modified: time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC)},
	}
}

func encodeAll(recs []*osv.Vulnerability) []byte {
	var n arenaSizes
	var body []byte
	for _, v := range recs {
		n.count(v)
		body = encodeRecord(body, v)
	}
	return append(appendHeader(nil, n), body...)
}

func TestCodecRoundTrip(t *testing.T) {
	in := sampleRecords()
	out, err := decodeRecords(encodeAll(in))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(in)
	got, _ := json.Marshal(out)
	if string(got) != string(want) {
		t.Errorf("round trip:\n got %s\nwant %s", got, want)
	}
	for i := range in {
		if !out[i].Modified.Equal(in[i].Modified) {
			t.Errorf("%s: modified %v, want %v", in[i].ID, out[i].Modified, in[i].Modified)
		}
	}
}

// A caller appending to a decoded slice must not overwrite the next
// record's data, which lives in the same arena.
func TestCodecSlicesAreIndependent(t *testing.T) {
	out, err := decodeRecords(encodeAll(sampleRecords()))
	if err != nil {
		t.Fatal(err)
	}
	out[0].Affected[0].Versions = append(out[0].Affected[0].Versions, "clobber")
	out[0].Aliases = append(out[0].Aliases, "clobber")
	if out[1].Affected[0].Versions[0] != "1.0.0" {
		t.Errorf("append clobbered the next record: %v", out[1].Affected[0].Versions)
	}
}

func TestCodecRejectsCorruptValues(t *testing.T) {
	good := encodeAll(sampleRecords())
	cases := map[string][]byte{
		"empty":         nil,
		"wrong version": append([]byte{99}, good[1:]...),
		"truncated":     good[:len(good)-3],
		"trailing":      append(append([]byte{}, good...), 0),
		"huge count":    {codecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, val := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeRecords(val); err == nil {
				t.Fatal("decoded a corrupt value")
			}
		})
	}
}

func FuzzDecodeRecords(f *testing.F) {
	f.Add(encodeAll(sampleRecords()))
	f.Add(encodeAll(sampleRecords()[1:2]))
	f.Add([]byte{codecVersion, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, val []byte) {
		recs, err := decodeRecords(val)
		if err != nil {
			return
		}
		// Whatever decodes must survive another round unchanged.
		again, err := decodeRecords(encodeAll(recs))
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		a, _ := json.Marshal(recs)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("round trip changed records:\n%s\n%s", a, b)
		}
	})
}

func TestNormalizeName(t *testing.T) {
	tests := []struct{ eco, in, want string }{
		{"PyPI", "JW_Util", "jw-util"},
		{"PyPI", "jw.util", "jw-util"},
		{"PyPI", "Foo--_.Bar", "foo-bar"},
		{"PyPI", " requests ", "requests"},
		{"NuGet", "Newtonsoft.Json", "newtonsoft.json"},
		{"npm", "@Scope/Pkg", "@Scope/Pkg"},
		{"Go", "github.com/BurntSushi/toml", "github.com/BurntSushi/toml"},
	}
	for _, tt := range tests {
		if got := NormalizeName(tt.eco, tt.in); got != tt.want {
			t.Errorf("NormalizeName(%q, %q) = %q, want %q", tt.eco, tt.in, got, tt.want)
		}
	}
	if Key("Ubuntu:22.04:LTS", "openssl") != Key("Ubuntu:22.04", "openssl") {
		t.Error("Ubuntu :LTS ecosystems index apart from the release")
	}
}
