// Package inventoryjson writes an inventory as berth's own JSON: the
// inventory.Inventory type as it is, with packages in the one stable order
// every berth report uses, so two runs over the same image give the same
// bytes and a diff shows only what changed.
package inventoryjson

import (
	"fmt"
	"io"
	"slices"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/internal/indentjson"
)

// MediaType names berth's inventory JSON.
const MediaType = "application/vnd.berth.inventory+json"

// Encode writes inv to w as indented JSON. It does not modify inv.
func Encode(w io.Writer, inv *inventory.Inventory) error {
	out := *inv
	out.Packages = slices.Clone(inv.Packages)
	slices.SortStableFunc(out.Packages, func(x, y inventory.Package) int { return bom.Compare(&x, &y) })
	// Always arrays, never null, so consumers need no special case for an
	// empty image.
	if out.Layers == nil {
		out.Layers = []inventory.Layer{}
	}
	if out.Packages == nil {
		out.Packages = []inventory.Package{}
	}
	if err := indentjson.Encode(w, &out); err != nil {
		return fmt.Errorf("write inventory JSON: %w", err)
	}
	return nil
}
