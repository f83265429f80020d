// Package report holds berth's output encoders behind one small interface
// and one table of formats by name, so the CLI and the server pick an
// encoder by the name the user gave (`berth sbom --format spdx`) and never
// import a format package directly.
//
// The SBOM formats live in subpackages, each usable on its own:
// cyclonedx (CycloneDX 1.6 JSON), spdx (SPDX 2.3 JSON), table (for
// people) and inventoryjson (berth's own inventory JSON). The package bom
// computes what the two SBOM standards share: stable order, unique refs,
// resolved dependencies, the image as subject.
//
// Vulnerability reports (a match.Report) have their own table of formats
// (vuln.go): vulntable (for people), reportjson (the stored report),
// sarif (SARIF 2.1.0) and cyclonedx.EncodeReport (CycloneDX with a
// vulnerabilities section).
package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/term"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/cyclonedx"
	"berth.dev/berth/internal/report/inventoryjson"
	"berth.dev/berth/internal/report/spdx"
	"berth.dev/berth/internal/report/table"
)

// ErrUnknownFormat is returned for a format name that is not in the table.
var ErrUnknownFormat = errors.New("unknown format")

// Options apply to every encoder; each uses the fields it needs.
type Options struct {
	// Created is the document creation time; zero means now.
	Created time.Time
	// DocumentID makes a document unique (CycloneDX serial number, SPDX
	// namespace); zero means a random UUID.
	DocumentID uuid.UUID
	// ToolVersion is berth's version as the documents name it.
	ToolVersion string
	// Table sets the table layout; nil means plain text unless w is a
	// terminal (then the terminal layout at its width, coloured unless
	// NO_COLOR is set).
	Table *table.Options
}

func (o Options) meta() bom.Meta {
	return bom.Meta{Created: o.Created, DocumentID: o.DocumentID, ToolVersion: o.ToolVersion}
}

// Encoder writes an inventory in one format.
type Encoder interface {
	Encode(w io.Writer, inv *inventory.Inventory, opts Options) error
}

// EncoderFunc adapts a function to Encoder.
type EncoderFunc func(w io.Writer, inv *inventory.Inventory, opts Options) error

// Encode calls f.
func (f EncoderFunc) Encode(w io.Writer, inv *inventory.Inventory, opts Options) error {
	return f(w, inv, opts)
}

// Format is one entry of the format table.
type Format struct {
	// Name is what users type after --format.
	Name string
	// Description is one line for help texts.
	Description string
	// MediaType is what the document is served or attached as.
	MediaType string
	Encoder   Encoder
}

// SBOMFormats is the table of SBOM formats, in the order help texts list
// them. Each call returns a new slice.
func SBOMFormats() []Format {
	return []Format{
		{
			Name:        "table",
			Description: "a table for people: ecosystem, name, version, source, layer, location",
			MediaType:   "text/plain; charset=utf-8",
			Encoder: EncoderFunc(func(w io.Writer, inv *inventory.Inventory, opts Options) error {
				topts := detectTable(w)
				if opts.Table != nil {
					topts = *opts.Table
				}
				return table.Encode(w, inv, topts)
			}),
		},
		{
			Name:        "json",
			Description: "berth's inventory as JSON, packages in a stable order",
			MediaType:   inventoryjson.MediaType,
			Encoder: EncoderFunc(func(w io.Writer, inv *inventory.Inventory, _ Options) error {
				return inventoryjson.Encode(w, inv)
			}),
		},
		{
			Name:        "cyclonedx",
			Description: "CycloneDX 1.6 JSON",
			MediaType:   cyclonedx.MediaType,
			Encoder: EncoderFunc(func(w io.Writer, inv *inventory.Inventory, opts Options) error {
				return cyclonedx.Encode(w, inv, opts.meta())
			}),
		},
		{
			Name:        "spdx",
			Description: "SPDX 2.3 JSON",
			MediaType:   spdx.MediaType,
			Encoder: EncoderFunc(func(w io.Writer, inv *inventory.Inventory, opts Options) error {
				return spdx.Encode(w, inv, opts.meta())
			}),
		},
	}
}

// SBOMFormatNames lists the names of SBOMFormats, for flag help and
// completion.
func SBOMFormatNames() []string {
	formats := SBOMFormats()
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = f.Name
	}
	return names
}

// LookupSBOM finds a format by name, ignoring case.
func LookupSBOM(name string) (Format, error) {
	for _, f := range SBOMFormats() {
		if strings.EqualFold(f.Name, name) {
			return f, nil
		}
	}
	return Format{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownFormat, name, strings.Join(SBOMFormatNames(), ", "))
}

// EncodeSBOM writes inv to w in the named format.
func EncodeSBOM(w io.Writer, format string, inv *inventory.Inventory, opts Options) error {
	f, err := LookupSBOM(format)
	if err != nil {
		return err
	}
	if inv == nil {
		return fmt.Errorf("encode %s: no inventory", f.Name)
	}
	return f.Encoder.Encode(w, inv, opts)
}

// detectTable picks the terminal layout when w is a terminal.
func detectTable(w io.Writer) table.Options {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return table.Options{}
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		width = 0
	}
	return table.Options{
		Terminal: true,
		Width:    width,
		Color:    os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb",
	}
}
