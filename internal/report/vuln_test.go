package report

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/internal/fixture"
	"berth.dev/berth/internal/report/table"
)

func TestReportFormats(t *testing.T) {
	if got := ReportFormatNames(); !slices.Equal(got, []string{"table", "json", "sarif", "cyclonedx"}) {
		t.Errorf("formats %v", got)
	}
	if f, err := LookupReport("SARIF"); err != nil || f.Name != "sarif" || f.MediaType != "application/sarif+json" {
		t.Errorf("LookupReport(SARIF) = %+v, %v", f, err)
	}
	if _, err := LookupReport("spdx"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("spdx is an SBOM format, not a report format: %v", err)
	}
	if err := EncodeReport(&bytes.Buffer{}, "json", nil, Options{}); err == nil {
		t.Error("EncodeReport of no report succeeded")
	}
	r := fixture.KitchenSinkReport(t)
	for _, name := range ReportFormatNames() {
		var buf bytes.Buffer
		if err := EncodeReport(&buf, name, r, Options{ToolVersion: "test", Table: &table.Options{}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Contains(buf.Bytes(), []byte("CVE-2020-8203")) {
			t.Errorf("%s output does not name CVE-2020-8203", name)
		}
	}
	// The table is plain text when the writer is not a terminal.
	var buf bytes.Buffer
	if err := EncodeReport(&buf, "table", &match.Report{}, Options{}); err != nil || bytes.Contains(buf.Bytes(), []byte("\x1b")) {
		t.Errorf("table to a buffer: %v %q", err, buf.String())
	}
}
