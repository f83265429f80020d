package ignore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

func TestParseText(t *testing.T) {
	l, err := ParseText([]byte(`# Accept the risk
# until the next base image
CVE-2018-14618

CVE-2019-14697 exp:2024-01-01
GHSA-29mw-wpgm-hmr9 exp:2099-12-31 # trailing comment
`), ".trivyignore")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 3 {
		t.Fatalf("entries %+v", l.Entries)
	}
	if e := l.Entries[0]; e.ID != "CVE-2018-14618" || e.Reason != "Accept the risk until the next base image" || !e.Expires.IsZero() || e.Where != ".trivyignore:3" {
		t.Errorf("entry 0 %+v", e)
	}
	if e := l.Entries[1]; !e.Expires.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) || e.Reason != "" {
		t.Errorf("entry 1 %+v", e)
	}
}

func TestParseTextErrors(t *testing.T) {
	for _, in := range []string{
		"CVE-1 exp:2024-13-01",
		"CVE-1 exp:tomorrow",
		"CVE-1 because",
	} {
		if _, err := ParseText([]byte(in), "f"); err == nil || !strings.Contains(err.Error(), "f:1") {
			t.Errorf("%q: error %v, want one naming f:1", in, err)
		}
	}
}

func TestParseYAML(t *testing.T) {
	l, err := ParseYAML([]byte(`vulnerabilities:
  - id: CVE-2022-40897
    statement: Accept the risk
  - id: CVE-2023-27534
    expired_at: 2023-09-01
  - id: GHSA-p6mc-m468-83gw
    purls:
      - pkg:npm/lodash
misconfigurations:
  - id: AVD-DS-0001
`), "trivyignore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 3 || l.Entries[0].Reason != "Accept the risk" || l.Entries[1].Expires.Year() != 2023 {
		t.Fatalf("entries %+v", l.Entries)
	}
	bad := map[string]string{
		"misspelt key":  "vulnerabilties:\n  - id: CVE-1\n",
		"missing id":    "vulnerabilities:\n  - statement: x\n",
		"bad date":      "vulnerabilities:\n  - id: CVE-1\n    expired_at: soon\n",
		"paths unknown": "vulnerabilities:\n  - id: CVE-1\n    paths: [a]\n",
		"not yaml":      "vulnerabilities: [",
	}
	for name, in := range bad {
		if _, err := ParseYAML([]byte(in), "f.yaml"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLookup(t *testing.T) {
	l := &List{Entries: []Entry{
		{ID: "CVE-1", Expires: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Where: "f:1"},
		{ID: "CVE-2", Where: "f:2"},
		{ID: "GHSA-x", PURLs: []string{"pkg:npm/lodash"}, Where: "f:3"},
		{ID: "CVE-3", Expires: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), Where: "f:4"},
	}}
	tests := []struct {
		ids            []string
		purl           string
		active, expire string
	}{
		{[]string{"CVE-2"}, "pkg:npm/a@1", "f:2", ""},
		{[]string{"GO-1", "CVE-2"}, "pkg:npm/a@1", "f:2", ""}, // by alias
		{[]string{"CVE-1"}, "pkg:npm/a@1", "", "f:1"},         // expired
		{[]string{"CVE-3"}, "pkg:npm/a@1", "", "f:4"},         // expires today: no longer applies
		{[]string{"GHSA-x"}, "pkg:npm/lodash@4.17.15", "f:3", ""},
		{[]string{"GHSA-x"}, "pkg:npm/lodash@4.17.15?foo=bar", "f:3", ""},
		{[]string{"GHSA-x"}, "pkg:npm/underscore@1.0.0", "", ""},
		{[]string{"CVE-9"}, "pkg:npm/a@1", "", ""},
	}
	for _, tc := range tests {
		a, e := l.Lookup(tc.ids, tc.purl, now)
		gotA, gotE := "", ""
		if a != nil {
			gotA = a.Where
		}
		if e != nil {
			gotE = e.Where
		}
		if gotA != tc.active || gotE != tc.expire {
			t.Errorf("Lookup(%v, %s) = %q, %q; want %q, %q", tc.ids, tc.purl, gotA, gotE, tc.active, tc.expire)
		}
	}
	var nilList *List
	if a, e := nilList.Lookup([]string{"CVE-1"}, "", now); a != nil || e != nil {
		t.Errorf("nil list matched")
	}
}

func TestLoadPicksFormat(t *testing.T) {
	dir := t.TempDir()
	y := filepath.Join(dir, "trivyignore.yaml")
	if err := os.WriteFile(y, []byte("vulnerabilities:\n  - id: CVE-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	txt := filepath.Join(dir, ".trivyignore")
	if err := os.WriteFile(txt, []byte("CVE-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, id := range map[string]string{y: "CVE-1", txt: "CVE-2"} {
		l, err := Load(path)
		if err != nil || len(l.Entries) != 1 || l.Entries[0].ID != id {
			t.Errorf("Load(%s) = %+v, %v", path, l, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("missing file: no error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("# c\nCVE-1 exp:2024-01-01\n"))
	f.Add([]byte("vulnerabilities:\n  - id: CVE-1\n    expired_at: 2023-09-01\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if l, err := ParseText(data, "f"); err == nil {
			for _, e := range l.Entries {
				if e.ID == "" || strings.HasPrefix(e.ID, "#") {
					t.Errorf("bad entry %+v", e)
				}
			}
		}
		if l, err := ParseYAML(data, "f"); err == nil {
			for _, e := range l.Entries {
				if e.ID == "" {
					t.Errorf("empty id from YAML")
				}
			}
		}
	})
}
