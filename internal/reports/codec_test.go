package reports

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
)

// TestDecodeInventoryReadsBothForms: inventories are written in
// invcodec's form, and the CBOR ones stored before it still decode to
// the same inventory.
func TestDecodeInventoryReadsBothForms(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := inventory.Inventory{Source: "app:1", Distro: &inventory.Distro{ID: "alpine", VersionID: "3.20.1"}, Layers: []inventory.Layer{},
		Packages: []inventory.Package{{Ecosystem: inventory.APK, Name: "musl", Version: "1.2.5-r0", SourceName: "musl", Analyzer: "apk",
			Locations: []string{"/lib/apk/db/installed"}}}}
	raw, err := cbor.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	inv, _, _, _, err := c.Encode(&match.Report{Inventory: want})
	if err != nil {
		t.Fatal(err)
	}
	for name, packed := range map[string][]byte{
		"invcodec": inv,
		"cbor":     c.enc.EncodeAll(raw, nil),
	} {
		var got inventory.Inventory
		if err := c.DecodeInventory(packed, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %#v, want %#v", name, got, want)
		}
	}
}

func sampleReport() *match.Report {
	return &match.Report{SchemaVersion: match.ReportSchemaVersion, MatchedAt: time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC),
		Inventory: inventory.Inventory{Packages: []inventory.Package{{Ecosystem: inventory.NPM, Name: "a", Version: "1.0.0", PURL: "pkg:npm/a@1.0.0"}}},
		Findings: []match.Finding{
			{ID: "GHSA-1", Severity: match.SeverityHigh, Package: inventory.Package{Ecosystem: inventory.NPM, Name: "a", Version: "1.0.0", PURL: "pkg:npm/a@1.0.0"}},
			{ID: "GHSA-2", Severity: match.SeverityLow, Status: match.StatusFixed, Package: inventory.Package{Ecosystem: inventory.NPM, Name: "a", Version: "1.0.0", PURL: "pkg:npm/a@1.0.0"}},
		},
		Warnings: []string{"w"}}
}

// TestRestReadsBothForms: rests are framed now; a rest stored before as
// one CBOR value still decodes, and a delta re-match still splices its
// findings.
func TestRestReadsBothForms(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := sampleReport()
	old := *r
	old.Inventory = inventory.Inventory{}
	raw, err := c.cenc.Marshal(&old)
	if err != nil {
		t.Fatal(err)
	}
	inv, framed, _, _, err := c.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, rest := range map[string][]byte{"framed": framed, "cbor": c.enc.EncodeAll(raw, nil)} {
		got, err := c.DecodeReport(inv, rest, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("%s: decoded %#v, want %#v", name, got, r)
		}
		// A delta that keeps the first finding, drops the second and adds
		// one.
		added := r.Findings[1]
		added.ID = "GHSA-3"
		cur := *r
		cur.Findings = []match.Finding{added}
		in := &RematchInput{Findings: []FindingKey{KeyOf(&r.Findings[0]), KeyOf(&r.Findings[1])}, Summary: Summarize(r), Results: rest}
		enc, err := c.EncodeRematch(&Rematched{Report: &cur, Prev: in, Kept: []match.Piece{{Start: 0, End: 1}, {New: true, Start: 0, End: 1}}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err = c.DecodeReport(inv, enc.Rest, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := *r
		want.Findings = []match.Finding{r.Findings[0], added}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("%s: spliced %#v, want %#v", name, got.Findings, want.Findings)
		}
		if enc.Summary != Summarize(&want) {
			t.Fatalf("%s: summary %+v, want %+v", name, enc.Summary, Summarize(&want))
		}
	}
}

// TestRestKeepsNilAndEmptyFindings: JSON tells "findings": null from [].
func TestRestKeepsNilAndEmptyFindings(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, findings := range [][]match.Finding{nil, {}} {
		r := &match.Report{Findings: findings}
		inv, rest, _, _, err := c.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.DecodeReport(inv, rest, nil)
		if err != nil {
			t.Fatal(err)
		}
		if (got.Findings == nil) != (findings == nil) || len(got.Findings) != 0 {
			t.Fatalf("findings %#v decoded as %#v", findings, got.Findings)
		}
	}
}

// FuzzParseRest: no stored rest makes parsing panic or return findings
// outside its bytes; a framed rest parses back to its parts.
func FuzzParseRest(f *testing.F) {
	c, err := NewCodec()
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	framed, err := c.frameRest(nil, sampleReport(), false, [][]byte{{0xa0}, {0x61, 'x'}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(framed)
	f.Add([]byte(restMagic + "\x00\x00"))
	f.Add([]byte(restMagic + "\x01\xa0\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = append([]byte(restMagic), raw...)
		head, findings, _, err := parseRest(raw)
		if err != nil {
			if !errors.Is(err, errCorruptRest) {
				t.Fatalf("error %v does not say the rest is corrupt", err)
			}
			return
		}
		again, err := c.frameRest(nil, &match.Report{}, findings == nil, findings)
		if err != nil {
			t.Fatal(err)
		}
		_, f2, _, err := parseRest(again)
		if err != nil || !reflect.DeepEqual(f2, findings) {
			t.Fatalf("findings %q re-framed parse as %q (%v)", findings, f2, err)
		}
		_ = head
		var r match.Report
		_ = c.decodeRest(raw, &r) // must not panic
	})
}
