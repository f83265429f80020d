package debian_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
	"berth.dev/berth/internal/vulndb/source/debian"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

var harness = vulndbtest.Harness{
	Fixture:    "vulndata/debian-tracker",
	New:        func(base string) source.Source { return debian.New(base) },
	MinRecords: 8900,
	Known: []vulndbtest.Known{
		{ID: "DSA-5380-1", Alias: "CVE-2023-1393", Ecosystem: "Debian:11", Package: "xorg-server", Fixed: "2:1.20.11-1+deb11u6"},
		{ID: "DLA-3380-1", Alias: "CVE-2020-12362", Ecosystem: "Debian:10", Package: "firmware-nonfree", Fixed: "20190114+really20220913-0+deb10u1"},
		{ID: "DLA-3372-1", Alias: "CVE-2023-1393", Ecosystem: "Debian:10", Package: "xorg-server", Fixed: "2:1.20.4-1+deb10u9"},
	},
}

func TestSuite(t *testing.T) { vulndbtest.Run(t, harness) }

func BenchmarkLoad(b *testing.B) { vulndbtest.Bench(b, harness) }

func parse(t *testing.T, list string) *vulndbtest.Collector {
	t.Helper()
	c := vulndbtest.NewCollector()
	if err := debian.Parse(context.Background(), strings.NewReader(list), c); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		want    map[string][]osv.Affected // id → affected
		aliases map[string][]string
		skipped map[string]int
	}{
		{
			name: "fixed in two releases",
			list: "[01 Apr 2023] DSA-9-1 curl - security update\n\t{CVE-1 CVE-2}\n\t[bullseye] - curl 7.74.0-1.3+deb11u7\n\t[buster] - curl 7.64.0-4+deb10u5\n",
			want: map[string][]osv.Affected{"DSA-9-1": {
				affected("Debian:11", "curl", "7.74.0-1.3+deb11u7"),
				affected("Debian:10", "curl", "7.64.0-4+deb10u5"),
			}},
			aliases: map[string][]string{"DSA-9-1": {"CVE-1", "CVE-2"}},
		},
		{
			name: "not affected release is left out",
			list: "[01 Apr 2023] DLA-1-1 pkg - security update\n\t[stretch] - pkg <not-affected> (vulnerable code not present)\n\t[buster] - pkg 1.0-1+deb10u1\n",
			want: map[string][]osv.Affected{"DLA-1-1": {affected("Debian:10", "pkg", "1.0-1+deb10u1")}},
		},
		{
			name: "end of life keeps every version affected",
			list: "[01 Apr 2014] DSA-2-1 linux - security update\n        [squeeze] - linux-2.6 <end-of-life>\n",
			want: map[string][]osv.Affected{"DSA-2-1": {affected("Debian:6", "linux-2.6", "")}},
		},
		{
			name:    "announcement without packages is skipped",
			list:    "[18 Apr 2018] DSA-4205-1 jessie end-of-life\n\tNOTE: end of security support for jessie\n",
			want:    map[string][]osv.Affected{},
			skipped: map[string]int{"no affected package in any release": 1},
		},
		{
			name: "unknown release and garbage lines are counted, the rest kept",
			list: "[01 Apr 2023] DSA-3-1 x - y\n\t[sid] - x 1.0\n\tgarbage\n\t[buster] - x 1.0\nnot a header\n\t[buster] - orphan 1\n",
			want: map[string][]osv.Affected{"DSA-3-1": {affected("Debian:10", "x", "1.0")}},
			skipped: map[string]int{
				`unknown Debian release "sid"`: 1,
				"unreadable release line":      1,
				"unreadable advisory header":   1,
			},
		},
		{
			name:    "unknown status tag",
			list:    "[01 Apr 2023] DSA-4-1 x - y\n\t[buster] - x <weird>\n",
			want:    map[string][]osv.Affected{},
			skipped: map[string]int{"unknown status <weird>": 1, "no affected package in any release": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parse(t, tt.list)
			if len(c.Records) != len(tt.want) {
				t.Fatalf("got records %v, want %d", keys(c.Records), len(tt.want))
			}
			for id, want := range tt.want {
				v := c.Records[id]
				if v == nil {
					t.Fatalf("record %s missing", id)
				}
				got := v.Affected
				for i := range got {
					got[i].DatabaseSpecific = nil
				}
				if !equalJSON(got, want) {
					t.Errorf("%s affected:\n got %s\nwant %s", id, js(got), js(want))
				}
			}
			for id, want := range tt.aliases {
				if !equalJSON(c.Records[id].Aliases, want) {
					t.Errorf("%s aliases %v, want %v", id, c.Records[id].Aliases, want)
				}
			}
			for reason, n := range tt.skipped {
				if c.Skipped[reason] != n {
					t.Errorf("skipped[%q] = %d, want %d (all: %v)", reason, c.Skipped[reason], n, c.Skipped)
				}
			}
		})
	}
}

func TestStatusKept(t *testing.T) {
	c := parse(t, "[01 Apr 2014] DSA-2-1 linux - security update\n\t[squeeze] - linux-2.6 <end-of-life>\n")
	var ds map[string]string
	if err := json.Unmarshal(c.Records["DSA-2-1"].Affected[0].DatabaseSpecific, &ds); err != nil {
		t.Fatal(err)
	}
	if ds["debian_status"] != "end-of-life" {
		t.Errorf("database_specific = %v, want debian_status end-of-life", ds)
	}
	if v := c.Records["DSA-2-1"]; v.Published.Format("2006-01-02") != "2014-04-01" || v.Summary != "linux - security update" {
		t.Errorf("published %v summary %q", v.Published, v.Summary)
	}
}

func affected(eco, name, fixed string) osv.Affected {
	events := []osv.Event{{Introduced: "0"}}
	if fixed != "" {
		events = append(events, osv.Event{Fixed: fixed})
	}
	return osv.Affected{
		Package: osv.Package{Ecosystem: eco, Name: name},
		Ranges:  []osv.Range{{Type: osv.RangeEcosystem, Events: events}},
	}
}

func keys(m map[string]*osv.Vulnerability) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func equalJSON(a, b any) bool { return js(a) == js(b) }

func FuzzParse(f *testing.F) {
	f.Add("[29 Mar 2023] DSA-5380-1 xorg-server - security update\n\t{CVE-2023-1393}\n\t[bullseye] - xorg-server 2:1.20.11-1+deb11u6\n")
	f.Add("[01 Apr 2014] DSA-2-1 linux\n        [squeeze] - linux-2.6 <end-of-life>\n\tNOTE: x\n")
	f.Add("\t[buster] - x 1\n[1 Jan 2000] DLA-1 a - b\n\t{\n\t[stretch] - y <not-affected>\n")
	f.Fuzz(func(t *testing.T, list string) {
		c := vulndbtest.NewCollector()
		if err := debian.Parse(context.Background(), strings.NewReader(list), c); err != nil {
			return // only reader errors (an over-long line) fail
		}
		for id, v := range c.Records {
			if id == "" || len(v.Affected) == 0 {
				t.Fatalf("record %q with %d affected entries", id, len(v.Affected))
			}
			for _, a := range v.Affected {
				if !strings.HasPrefix(a.Package.Ecosystem, "Debian:") || a.Package.Name == "" {
					t.Fatalf("bad affected entry %+v", a.Package)
				}
			}
		}
	})
}
