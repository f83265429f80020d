package scan

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report"
	"berth.dev/berth/internal/sign/attestation"
)

// PredicateInput is what a vulnerability attestation says besides the
// report: who scanned, against which database, with which parameters, when.
type PredicateInput struct {
	ToolVersion string
	// DBSources name the feeds the database was built from; DBUpdatedAt is
	// the time of the update that built it.
	DBSources   []string
	DBUpdatedAt time.Time
	// Parameters are the options that shaped the result (--severity=…).
	Parameters        []string
	Started, Finished time.Time
}

// VulnPredicate wraps the report in cosign's vulnerability scan record:
// berth's JSON report is the result; the database is identified by its
// sources and the time of the update that built it (berth builds its
// database locally from several feeds, so no single URI names it). The
// CLI (`berth scan --attest`) and the server's scan stage both use it.
func VulnPredicate(shown *match.Report, in PredicateInput) ([]byte, error) {
	var result bytes.Buffer
	if err := report.EncodeReport(&result, "json", shown, report.Options{ToolVersion: in.ToolVersion}); err != nil {
		return nil, fmt.Errorf("vulnerability predicate: %w", err)
	}
	p := attestation.VulnPredicate{
		Invocation: attestation.VulnInvocation{Parameters: in.Parameters},
		Scanner: attestation.VulnScanner{
			URI:     "pkg:golang/berth.dev/berth@" + in.ToolVersion,
			Version: in.ToolVersion,
			DB:      attestation.VulnDB{URI: strings.Join(in.DBSources, ", "), Version: in.DBUpdatedAt.UTC().Format(time.RFC3339)},
			Result:  result.Bytes(),
		},
		Metadata: attestation.VulnMetadata{ScanStartedOn: in.Started.UTC(), ScanFinishedOn: in.Finished.UTC()},
	}
	return p.Marshal()
}
