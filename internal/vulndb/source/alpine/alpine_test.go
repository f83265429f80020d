package alpine_test

import (
	"encoding/json"
	"strings"
	"testing"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb/source"
	"berth.dev/berth/internal/vulndb/source/alpine"
	"berth.dev/berth/internal/vulndb/vulndbtest"
)

var harness = vulndbtest.Harness{
	Fixture:    "vulndata/alpine-secdb",
	New:        func(base string) source.Source { return alpine.New(base) },
	MinRecords: 2000,
	Known: []vulndbtest.Known{
		{ID: "ALPINE-CVE-2019-10206", Alias: "CVE-2019-10206", Ecosystem: "Alpine:v3.10", Package: "ansible", Fixed: "2.8.4-r0"},
		{ID: "ALPINE-CVE-2019-0211", Alias: "CVE-2019-0211", Ecosystem: "Alpine:v3.10", Package: "apache2", Fixed: "2.4.39-r0"},
		// Written "CVE 2018-16859" upstream.
		{ID: "ALPINE-CVE-2018-16859", Alias: "CVE-2018-16859", Ecosystem: "Alpine:v3.9", Package: "ansible", Fixed: "2.7.3-r0"},
	},
}

func TestSuite(t *testing.T) { vulndbtest.Run(t, harness) }

func BenchmarkLoad(b *testing.B) { vulndbtest.Bench(b, harness) }

func convert(t *testing.T, docs ...string) *vulndbtest.Collector {
	t.Helper()
	var dbs []*alpine.SecDB
	for _, d := range docs {
		db, err := alpine.Parse(strings.NewReader(d))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		dbs = append(dbs, db)
	}
	c := vulndbtest.NewCollector()
	if err := alpine.Convert(dbs, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConvert(t *testing.T) {
	c := convert(t,
		`{"distroversion":"v3.10","reponame":"main","packages":[
			{"pkg":{"name":"xen","secfixes":{"4.12.1-r0":["CVE-2019-17340 XSA-284","CVE-????-????? XSA-295"],"0":["CVE-2016-1"]}}},
			{"pkg":{"name":"db","secfixes":{"0":["CVE-2016-0682"]}}},
			{"pkg":{"name":"weechat","secfixes":{"1.7.1-r0":["CVE-2017-8073.patch"]}}},
			{"pkg":{"name":"nosec"}}]}`,
		`{"distroversion":"v3.9","reponame":"main","packages":[
			{"pkg":{"name":"xen","secfixes":{"4.11.1-r1":["CVE-2019-17340 XSA-284"]}}}]}`,
		`{"distroversion":"v3.3","reponame":"community","packages":null}`,
	)
	xsa := c.Records["ALPINE-CVE-2019-17340"]
	if xsa == nil {
		t.Fatalf("ALPINE-CVE-2019-17340 missing; got %v", c.Records)
	}
	if got := js(xsa.Aliases); got != `["CVE-2019-17340","XSA-284"]` {
		t.Errorf("aliases %s", got)
	}
	want := []osv.Affected{entry("Alpine:v3.10", "xen", "4.12.1-r0"), entry("Alpine:v3.9", "xen", "4.11.1-r1")}
	if js(xsa.Affected) != js(want) {
		t.Errorf("affected\n got %s\nwant %s", js(xsa.Affected), js(want))
	}
	// The first readable identifier names a record whose CVE is unknown.
	if c.Records["ALPINE-XSA-295"] == nil {
		t.Error("ALPINE-XSA-295 missing")
	}
	for _, id := range []string{"ALPINE-CVE-2016-0682", "ALPINE-CVE-2016-1"} {
		if c.Records[id] != nil {
			t.Errorf("%s: fixed version 0 means never affected, yet a record was made", id)
		}
	}
	if c.Skipped["unreadable identifier"] != 1 || c.Skipped["marked not affected (fixed version 0) everywhere"] != 2 {
		t.Errorf("skipped %v", c.Skipped)
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":         "distroversion: v3.10",
		"not an object":    `["a"]`,
		"no secdb fields":  `{"hello":"world"}`,
		"truncated":        `{"distroversion":"v3.10","packages":[{"pkg":`,
		"trailing garbage": `{"distroversion":"v3.10","packages":[]} x`,
		"wrong types":      `{"distroversion":"v3.10","packages":[{"pkg":{"name":"a","secfixes":{"1":"CVE-1"}}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := alpine.Parse(strings.NewReader(doc)); err == nil {
				t.Fatal("Parse accepted it")
			}
		})
	}
}

func entry(eco, name, fixed string) osv.Affected {
	return osv.Affected{
		Package: osv.Package{Ecosystem: eco, Name: name},
		Ranges:  []osv.Range{{Type: osv.RangeEcosystem, Events: []osv.Event{{Introduced: "0"}, {Fixed: fixed}}}},
	}
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func FuzzParse(f *testing.F) {
	f.Add(`{"distroversion":"v3.10","reponame":"main","packages":[{"pkg":{"name":"xen","secfixes":{"4.12.1-r0":["CVE-2019-17340 XSA-284"],"0":["CVE-1"]}}}]}`)
	f.Add(`{"distroversion":"v3.3","packages":null}`)
	f.Add(`{"distroversion":"","packages":[{"pkg":{"name":"","secfixes":{"":[""," CVE_2019-1 "]}}}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		db, err := alpine.Parse(strings.NewReader(doc))
		if err != nil {
			return
		}
		c := vulndbtest.NewCollector()
		if err := alpine.Convert([]*alpine.SecDB{db}, c); err != nil {
			t.Fatal(err)
		}
		for id, v := range c.Records {
			if !strings.HasPrefix(id, "ALPINE-") || len(v.Affected) == 0 || len(v.Aliases) == 0 {
				t.Fatalf("bad record %s: %+v", id, v)
			}
			for _, a := range v.Affected {
				if a.Package.Name == "" || a.Ranges[0].Events[1].Fixed == "0" {
					t.Fatalf("bad affected entry %+v", a)
				}
			}
		}
	})
}
