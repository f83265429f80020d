// Package reportjson writes a vulnerability report as berth's own JSON:
// the match.Report type as it is, which is also what the server stores and
// what `berth scan --input` reads back to rematch without the image.
package reportjson

import (
	"fmt"
	"io"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/report/internal/indentjson"
)

// MediaType names berth's report JSON.
const MediaType = "application/vnd.berth.report+json"

// Encode writes r to w as indented JSON. It does not modify r.
func Encode(w io.Writer, r *match.Report) error {
	out := *r
	// Always arrays, never null, so consumers need no special case for a
	// clean image.
	if out.Findings == nil {
		out.Findings = []match.Finding{}
	}
	if out.Inventory.Layers == nil {
		out.Inventory.Layers = []inventory.Layer{}
	}
	if out.Inventory.Packages == nil {
		out.Inventory.Packages = []inventory.Package{}
	}
	if err := indentjson.Encode(w, &out); err != nil {
		return fmt.Errorf("write report JSON: %w", err)
	}
	return nil
}
