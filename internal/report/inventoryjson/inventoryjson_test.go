package inventoryjson

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/bom"
	"berth.dev/berth/internal/report/internal/fixture"
)

func encode(t testing.TB, inv *inventory.Inventory) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, inv); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

func TestKitchenSinkRoundTrip(t *testing.T) {
	inv := fixture.KitchenSink(t)
	out := encode(t, inv)
	golden.Check(t, filepath.Join("testdata", "kitchen-sink.json"), out)

	var back inventory.Inventory
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	// Nothing lost: the same packages, only in the stable order.
	want := slices.Clone(inv.Packages)
	slices.SortStableFunc(want, func(x, y inventory.Package) int { return bom.Compare(&x, &y) })
	if !reflect.DeepEqual(back.Packages, want) {
		t.Error("packages changed on the way through JSON")
	}
	back.Packages, inv.Packages = nil, nil
	if !reflect.DeepEqual(back, *inv) {
		t.Error("inventory fields changed on the way through JSON")
	}
}

func TestStableOrder(t *testing.T) {
	inv := fixture.KitchenSink(t)
	first := encode(t, inv)
	slices.Reverse(inv.Packages)
	reversed := slices.Clone(inv.Packages)
	if second := encode(t, inv); !bytes.Equal(first, second) {
		t.Error("input order changes the output")
	}
	if !reflect.DeepEqual(inv.Packages, reversed) {
		t.Error("Encode reordered its input")
	}
}

func TestEmptyInventoryHasArrays(t *testing.T) {
	out := string(encode(t, &inventory.Inventory{}))
	for _, want := range []string{`"layers": []`, `"packages": []`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestAwkwardInputs(t *testing.T) {
	for _, tc := range fixture.AwkwardInputs() {
		t.Run(tc.Name, func(t *testing.T) {
			out := encode(t, tc.Inv)
			golden.Check(t, filepath.Join("testdata", "awkward", strings.ReplaceAll(tc.Name, " ", "-")+".json"), out)
			var back inventory.Inventory
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatalf("output is not inventory JSON: %v", err)
			}
			if len(back.Packages) != len(tc.Inv.Packages) {
				t.Errorf("%d packages back, want %d", len(back.Packages), len(tc.Inv.Packages))
			}
		})
	}
}

func BenchmarkEncode2000(b *testing.B) {
	inv := fixture.Synthetic(2000)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Encode(&buf, inv); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
