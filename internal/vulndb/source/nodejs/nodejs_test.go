package nodejs_test

import (
	"encoding/json"
	"testing"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
	"berth.dev/berth/internal/vulndb/source/nodejs"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

var harness = vulndbtest.Harness{
	Fixture:    "vulndata/nodejs-security-wg",
	New:        func(base string) source.Source { return nodejs.New(source.Join(base, "vuln.zip")) },
	MinRecords: 360,
	Known: []vulndbtest.Known{
		{ID: "NSWG-ECO-1", Alias: "CVE-2014-7205", Ecosystem: "npm", Package: "bassmaster"},
	},
}

func TestSuite(t *testing.T) { vulndbtest.Run(t, harness) }

func BenchmarkLoad(b *testing.B) { vulndbtest.Bench(b, harness) }

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestConvertRanges(t *testing.T) {
	ev := func(events ...osv.Event) osv.Range { return osv.Range{Type: osv.RangeSemver, Events: events} }
	in := func(v string) osv.Event { return osv.Event{Introduced: v} }
	tests := []struct {
		vulnerable string
		ranges     []osv.Range
		versions   []string
	}{
		{"<=1.5.1", []osv.Range{ev(in("0"), osv.Event{LastAffected: "1.5.1"})}, nil},
		{"< 0.3.0", []osv.Range{ev(in("0"), osv.Event{Fixed: "0.3.0"})}, nil},
		{"*", []osv.Range{ev(in("0"))}, nil},
		{">=0.1.0", []osv.Range{ev(in("0.1.0"))}, nil},
		{"2.1.4", nil, []string{"2.1.4"}},
		{">=2.0.0-alpha8 <=2.0.0-rc2 || >=2.0.0 <=2.13.0", []osv.Range{
			ev(in("2.0.0-alpha8"), osv.Event{LastAffected: "2.0.0-rc2"}),
			ev(in("2.0.0"), osv.Event{LastAffected: "2.13.0"}),
		}, nil},
		{"2.0.x || 2.1.x", []osv.Range{
			ev(in("2.0.0"), osv.Event{Fixed: "2.1.0"}),
			ev(in("2.1.0"), osv.Event{Fixed: "2.2.0"}),
		}, nil},
		{">= 0.2.0 <= 0.9.6 || ~0.8.0-pre", []osv.Range{
			ev(in("0.2.0"), osv.Event{LastAffected: "0.9.6"}),
			ev(in("0.8.0-pre"), osv.Event{Fixed: "0.9.0"}),
		}, nil},
		{"1.x || ~2 || ^1.2.3 || ^0.2.3 || ^0.0.3 || 3", []osv.Range{
			ev(in("1.0.0"), osv.Event{Fixed: "2.0.0"}),
			ev(in("2.0.0"), osv.Event{Fixed: "3.0.0"}),
			ev(in("1.2.3"), osv.Event{Fixed: "2.0.0"}),
			ev(in("0.2.3"), osv.Event{Fixed: "0.3.0"}),
			ev(in("0.0.3"), osv.Event{Fixed: "0.0.4"}),
			ev(in("3.0.0"), osv.Event{Fixed: "4.0.0"}),
		}, nil},
		{"<1.6.6 || < 2.2.4 > 2.0.0", []osv.Range{
			ev(in("0"), osv.Event{Fixed: "1.6.6"}),
			ev(in("2.0.0"), osv.Event{Fixed: "2.2.4"}),
		}, nil},
	}
	for _, tt := range tests {
		doc := `{"id":7,"module_name":"m","vulnerable_versions":` + js(tt.vulnerable) + `,"cves":["CVE-1"],"cvss_vector":"CVSS:3.0/AV:N","publish_date":"2020-01-02","updated_at":"2021-03-04"}`
		v, err := nodejs.Convert([]byte(doc))
		if err != nil {
			t.Errorf("%q: %v", tt.vulnerable, err)
			continue
		}
		a := v.Affected[0]
		if js(a.Ranges) != js(tt.ranges) || js(a.Versions) != js(tt.versions) {
			t.Errorf("%q:\n got %s %v\nwant %s %v", tt.vulnerable, js(a.Ranges), a.Versions, js(tt.ranges), tt.versions)
		}
		if v.ID != "NSWG-ECO-7" || v.Severity[0].Type != "CVSS_V3" || v.Published.Format("2006-01-02") != "2020-01-02" {
			t.Errorf("%q: record %s", tt.vulnerable, js(v))
		}
	}
}

func TestConvertRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"caret in pair": `{"id":1,"module_name":"m","vulnerable_versions":"^1.2.3 <2"}`,
		"x with pre":    `{"id":1,"module_name":"m","vulnerable_versions":"1.x-beta"}`,
		"caret garbage": `{"id":1,"module_name":"m","vulnerable_versions":"^a.b"}`,
		"two uppers":    `{"id":1,"module_name":"m","vulnerable_versions":"<1 <2"}`,
		"empty":         `{"id":1,"module_name":"m","vulnerable_versions":" "}`,
		"null range":    `{"id":1,"module_name":"m","vulnerable_versions":null}`,
		"no module":     `{"id":1,"vulnerable_versions":"<1.0.0"}`,
		"bad id":        `{"id":-1,"module_name":"m","vulnerable_versions":"<1.0.0"}`,
		"not JSON":      `{"id":`,
		"dangling op":   `{"id":1,"module_name":"m","vulnerable_versions":">="}`,
		"star with op":  `{"id":1,"module_name":"m","vulnerable_versions":">=*"}`,
		"garbage op":    `{"id":1,"module_name":"m","vulnerable_versions":"=>1.0.0"}`,
		"two lowers":    `{"id":1,"module_name":"m","vulnerable_versions":">1 >=2"}`,
		"exact and <":   `{"id":1,"module_name":"m","vulnerable_versions":"1.0.0 <2.0.0"}`,
		"pipe in range": `{"id":1,"module_name":"m","vulnerable_versions":"|"}`,
	} {
		if v, err := nodejs.Convert([]byte(doc)); err == nil {
			t.Errorf("%s: converted to %s", name, js(v))
		}
	}
}

func FuzzConvertRange(f *testing.F) {
	for _, s := range []string{"<=1.5.1", ">= 0.2.0 <= 0.9.6 || ~0.8.0-pre", "2.0.x || 2.1.x", "^0.0.3", "*", "1.2.3", "<1 <2", "~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, vulnerable string) {
		v, err := nodejs.Convert([]byte(`{"id":1,"module_name":"m","vulnerable_versions":` + js(vulnerable) + `}`))
		if err != nil {
			return
		}
		a := v.Affected[0]
		if len(a.Ranges) == 0 && len(a.Versions) == 0 {
			t.Fatalf("%q: nothing affected", vulnerable)
		}
		for _, r := range a.Ranges {
			if len(r.Events) == 0 || r.Events[0].Introduced == "" {
				t.Fatalf("%q: range without introduced: %s", vulnerable, js(r))
			}
		}
	})
}
