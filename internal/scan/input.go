package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
)

// maxStoredReport bounds what ReadStored accepts: a report of a very large
// image is a few megabytes.
const maxStoredReport = 256 << 20

// ReadStored reads what `berth scan --input` takes: a report as `berth
// scan --format json` writes it (a match.Report), or an inventory as
// `berth sbom --format json` writes it. Either way the result is a report
// whose inventory can be rematched; an inventory gives one without
// findings.
func ReadStored(r io.Reader) (*match.Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxStoredReport+1))
	if err != nil {
		return nil, fmt.Errorf("read stored report: %w", err)
	}
	if len(data) > maxStoredReport {
		return nil, fmt.Errorf("stored report is larger than %d MiB", maxStoredReport>>20)
	}
	var probe struct {
		SchemaVersion *int            `json:"schemaVersion"`
		Inventory     json.RawMessage `json:"inventory"`
		Packages      json.RawMessage `json:"packages"`
		Layers        json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("stored report is not JSON: %w", err)
	}
	switch {
	case probe.Inventory != nil:
		if probe.SchemaVersion == nil {
			return nil, errors.New("stored report has no schemaVersion: not a berth report")
		}
		var rep match.Report
		if err := json.Unmarshal(data, &rep); err != nil {
			return nil, fmt.Errorf("stored report: %w", err)
		}
		if rep.SchemaVersion < 1 || rep.SchemaVersion > match.ReportSchemaVersion {
			return nil, fmt.Errorf("stored report has schema %d; this berth reads 1 to %d", rep.SchemaVersion, match.ReportSchemaVersion)
		}
		return &rep, nil
	case probe.Packages != nil || probe.Layers != nil:
		var inv inventory.Inventory
		if err := json.Unmarshal(data, &inv); err != nil {
			return nil, fmt.Errorf("stored inventory: %w", err)
		}
		return &match.Report{SchemaVersion: match.ReportSchemaVersion, Inventory: inv, Findings: []match.Finding{}}, nil
	}
	return nil, errors.New("not a berth report (berth scan --format json) or inventory (berth sbom --format json)")
}
