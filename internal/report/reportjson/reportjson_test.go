package reportjson

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/internal/fixture"
)

// TestRoundTrip: the stored report reads back field for field, which is
// what rematching a stored report relies on.
func TestRoundTrip(t *testing.T) {
	reports := []*match.Report{fixture.KitchenSinkReport(t)}
	for _, a := range fixture.AwkwardReports() {
		reports = append(reports, a.R)
	}
	for _, r := range reports {
		var buf bytes.Buffer
		if err := Encode(&buf, r); err != nil {
			t.Fatal(err)
		}
		var back match.Report
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		if err := Encode(&again, &back); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), buf.Bytes()) {
			t.Errorf("%q: report changed in a round trip", r.Inventory.Source)
		}
	}
}

// TestStoredFixtureIsCanonical: the kitchen-sink report fixture is what
// this encoder writes for it, so the fixture is a real stored report.
func TestStoredFixtureIsCanonical(t *testing.T) {
	want, err := os.ReadFile(fixture.KitchenSinkReportPath())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, fixture.KitchenSinkReport(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Error("re-encoding the kitchen-sink report fixture changes it")
	}
}

func TestEmptyArrays(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, &match.Report{SchemaVersion: 1}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"findings": []`, `"packages": []`, `"layers": []`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("empty report lacks %s:\n%s", want, buf.String())
		}
	}
}
