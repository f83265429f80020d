package report

import (
	"fmt"
	"io"
	"strings"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/cyclonedx"
	"berth.dev/berth/internal/report/reportjson"
	"berth.dev/berth/internal/report/sarif"
	"berth.dev/berth/internal/report/vulntable"
)

// InformationURI is where the documents berth writes send people to learn
// about the tool.
const InformationURI = "https://berth.dev"

// ReportEncoder writes a vulnerability report (a match.Report, usually
// after match.Filter.Apply) in one format.
type ReportEncoder interface {
	EncodeReport(w io.Writer, r *match.Report, opts Options) error
}

// ReportEncoderFunc adapts a function to ReportEncoder.
type ReportEncoderFunc func(w io.Writer, r *match.Report, opts Options) error

// EncodeReport calls f.
func (f ReportEncoderFunc) EncodeReport(w io.Writer, r *match.Report, opts Options) error {
	return f(w, r, opts)
}

// ReportFormat is one entry of the vulnerability-report format table.
type ReportFormat struct {
	Name        string
	Description string
	MediaType   string
	Encoder     ReportEncoder
}

// ReportFormats is the table of vulnerability-report formats, in the order
// help texts list them. Each call returns a new slice.
func ReportFormats() []ReportFormat {
	return []ReportFormat{
		{
			Name:        "table",
			Description: "a table for people, grouped by package, with the layer that brought each",
			MediaType:   "text/plain; charset=utf-8",
			Encoder: ReportEncoderFunc(func(w io.Writer, r *match.Report, opts Options) error {
				topts := detectTable(w)
				if opts.Table != nil {
					topts = *opts.Table
				}
				return vulntable.Encode(w, r, topts)
			}),
		},
		{
			Name:        "json",
			Description: "berth's report as JSON: the inventory and its findings (what --input reads back)",
			MediaType:   reportjson.MediaType,
			Encoder: ReportEncoderFunc(func(w io.Writer, r *match.Report, _ Options) error {
				return reportjson.Encode(w, r)
			}),
		},
		{
			Name:        "sarif",
			Description: "SARIF 2.1.0, for GitHub code scanning",
			MediaType:   sarif.MediaType,
			Encoder: ReportEncoderFunc(func(w io.Writer, r *match.Report, opts Options) error {
				return sarif.Encode(w, r, sarif.Meta{ToolVersion: opts.ToolVersion, InformationURI: InformationURI})
			}),
		},
		{
			Name:        "cyclonedx",
			Description: "CycloneDX 1.6 JSON with a vulnerabilities section",
			MediaType:   cyclonedx.MediaType,
			Encoder: ReportEncoderFunc(func(w io.Writer, r *match.Report, opts Options) error {
				return cyclonedx.EncodeReport(w, r, opts.meta())
			}),
		},
	}
}

// ReportFormatNames lists the names of ReportFormats, for flag help and
// completion.
func ReportFormatNames() []string {
	formats := ReportFormats()
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = f.Name
	}
	return names
}

// LookupReport finds a vulnerability-report format by name, ignoring case.
func LookupReport(name string) (ReportFormat, error) {
	for _, f := range ReportFormats() {
		if strings.EqualFold(f.Name, name) {
			return f, nil
		}
	}
	return ReportFormat{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownFormat, name, strings.Join(ReportFormatNames(), ", "))
}

// EncodeReport writes r to w in the named format.
func EncodeReport(w io.Writer, format string, r *match.Report, opts Options) error {
	f, err := LookupReport(format)
	if err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("encode %s: no report", f.Name)
	}
	return f.Encoder.EncodeReport(w, r, opts)
}
