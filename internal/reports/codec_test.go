package reports

import (
	"reflect"
	"testing"

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
