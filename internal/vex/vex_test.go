package vex

import (
	"os"
	"testing"
)

func TestLookup(t *testing.T) {
	s, err := Load("testdata/app.openvex.json", "testdata/legacy-v001.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 6 {
		t.Fatalf("statements %d, want 6", s.Len())
	}
	image := []string{"registry.example.com/app:1", "sha256:1111111111111111111111111111111111111111111111111111111111111111"}
	tests := []struct {
		name          string
		ids           []string
		purl          string
		status        string
		justification string
	}{
		{"exact purl", []string{"CVE-2020-8203"}, "pkg:npm/lodash@4.17.15", NotAffected, "vulnerable_code_not_in_execute_path"},
		{"by alias", []string{"GHSA-p6mc-m468-83gw"}, "pkg:npm/lodash@4.17.15", NotAffected, "vulnerable_code_not_in_execute_path"},
		{"other version", []string{"CVE-2020-8203"}, "pkg:npm/lodash@4.17.21", "", ""},
		{"versionless product, latest statement wins", []string{"CVE-2020-28500"}, "pkg:npm/lodash@4.17.15", Affected, ""},
		{"image product with subcomponent", []string{"CVE-2022-2097"}, "pkg:deb/debian/libssl1.1@1.1.1n-0+deb11u3?arch=amd64", Fixed, ""},
		{"image product, other package", []string{"CVE-2022-2097"}, "pkg:deb/debian/libc6@2.31-13", "", ""},
		{"product qualifiers must be on the package", []string{"CVE-2021-44906"}, "pkg:npm/minimist@1.2.0", "", ""},
		{"legacy v0.0.1 document", []string{"CVE-2020-15168"}, "pkg:npm/node-fetch@2.6.0", NotAffected, "inline_mitigations_already_exist"},
		{"unknown vulnerability", []string{"CVE-1999-0001"}, "pkg:npm/lodash@4.17.15", "", ""},
	}
	for _, tc := range tests {
		st, ok := s.Lookup(tc.ids, tc.purl, image)
		if tc.status == "" {
			if ok {
				t.Errorf("%s: matched %+v", tc.name, st)
			}
			continue
		}
		if !ok || st.Status != tc.status || st.Justification != tc.justification {
			t.Errorf("%s: got %+v %v, want %s %s", tc.name, st, ok, tc.status, tc.justification)
		}
	}
	// The image statement needs the image: without its digest it does not
	// apply.
	if _, ok := s.Lookup([]string{"CVE-2022-2097"}, "pkg:deb/debian/libssl1.1@1.1.1n-0+deb11u3", nil); ok {
		t.Errorf("image statement applied without the image")
	}
	st, _ := s.Lookup([]string{"CVE-2020-8203"}, "pkg:npm/lodash@4.17.15", nil)
	if !st.Suppresses() || st.Document != "https://example.com/vex/app-2024-06" || st.ImpactStatement == "" {
		t.Errorf("statement %+v", st)
	}
}

func TestBadDocuments(t *testing.T) {
	for _, f := range []string{"testdata/bad-status.json", "testdata/truncated.json", "testdata/missing.json"} {
		if _, err := Load(f); err == nil {
			t.Errorf("%s: no error", f)
		}
	}
	data, err := os.ReadFile("testdata/app.openvex.json")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Parse(data, "app"); err != nil || s.Len() != 5 {
		t.Errorf("Parse: %v, %d statements", err, s.Len())
	}
	if _, err := Parse(data[:100], "cut"); err == nil {
		t.Errorf("Parse of a truncated document: no error")
	}
	var none *Set
	if _, ok := none.Lookup([]string{"CVE-1"}, "pkg:npm/a@1", nil); ok || none.Len() != 0 {
		t.Errorf("nil set matched")
	}
}
