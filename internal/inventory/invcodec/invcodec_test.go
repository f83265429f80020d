package invcodec

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"berth.dev/berth/internal/inventory"
)

// viaJSON is the reference: what inv is after a JSON round trip.
func viaJSON(t testing.TB, inv *inventory.Inventory) inventory.Inventory {
	t.Helper()
	b, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	var out inventory.Inventory
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func roundTrip(t testing.TB, inv *inventory.Inventory) inventory.Inventory {
	t.Helper()
	var out inventory.Inventory
	if err := Decode(Append(nil, inv), &out); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

func sample() inventory.Inventory {
	return inventory.Inventory{
		Source: "registry.example/app:1", Digest: "sha256:aa", ConfigDigest: "sha256:bb", OS: "linux", Architecture: "amd64",
		Distro: &inventory.Distro{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Layers: []inventory.Layer{{DiffID: "sha256:11", Digest: "sha256:22", Size: 31_457_280, CreatedBy: "ADD rootfs.tar /"},
			{DiffID: "sha256:33", Size: -1}},
		Packages: []inventory.Package{
			{Ecosystem: inventory.Deb, Name: "libc6", Version: "2.36-9+deb12u4", SourceName: "glibc", SourceVersion: "2.36-9+deb12u4",
				Arch: "amd64", PURL: "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12", Licenses: []string{"LGPL-2.1", "GPL-2.0"},
				Locations: []string{"/var/lib/dpkg/status"}, Layer: "sha256:11", Analyzer: "dpkg"},
			{Ecosystem: inventory.NPM, Name: "@scope/ünïcode", Version: "1.0.0-beta.1", Locations: []string{"/app/package-lock.json", "/app/node_modules/@scope/ünïcode/package.json"},
				Analyzer: "npm", DependsOn: []string{"left-pad"}, Dev: true},
			{Ecosystem: inventory.Go, Name: "stdlib", Licenses: []string{}, Analyzer: "gobinary"},
			{Ecosystem: inventory.NPM, Name: "@my-monorepo/client", Version: "1.0.0", Analyzer: "npm-lock", Local: true},
			{Ecosystem: inventory.Pub, Name: "flutter_test", Version: "0.0.0", Analyzer: "pub", Local: true, Dev: true},
		},
		Warnings: []string{"a warning", ""},
	}
}

func TestRoundTripEqualsJSON(t *testing.T) {
	full := sample()
	noDistro := sample()
	noDistro.Distro = nil
	emptyLists := inventory.Inventory{Layers: []inventory.Layer{}, Packages: []inventory.Package{}, Warnings: []string{}}
	for _, tc := range []struct {
		name string
		inv  inventory.Inventory
	}{
		{"full", full},
		{"no distro", noDistro},
		{"zero", inventory.Inventory{}},
		{"empty lists", emptyLists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want := roundTrip(t, &tc.inv), viaJSON(t, &tc.inv)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

// TestCBORIsNotMistaken: the stores read inventories they wrote as CBOR
// before; those must not look like this encoding.
func TestCBORIsNotMistaken(t *testing.T) {
	inv := sample()
	b, err := cbor.Marshal(&inv)
	if err != nil {
		t.Fatal(err)
	}
	if Is(b) {
		t.Fatal("a CBOR inventory is taken for this encoding")
	}
	if !Is(Append(nil, &inv)) {
		t.Fatal("an encoding is not recognised")
	}
}

func TestCorruptInputIsAnError(t *testing.T) {
	inv := sample()
	good := Append(nil, &inv)
	huge := append([]byte(magic), 0, 0, 0, 0, 0, 0)
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x0f) // a layer count of 2^32
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not this encoding", []byte(`{"source":"x"}`)},
		{"header only", []byte(magic)},
		{"truncated", good[:len(good)-3]},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
		{"count beyond the input", huge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := inventory.Inventory{Source: "left over"}
			err := Decode(tc.in, &out)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !reflect.DeepEqual(out, inventory.Inventory{}) {
				t.Fatalf("a failed decode left %#v", out)
			}
		})
	}
}

// TestDecodedListsDoNotOverlap: the packages' lists share one backing
// slice; appending to one must not change the next.
func TestDecodedListsDoNotOverlap(t *testing.T) {
	inv := sample()
	out := roundTrip(t, &inv)
	_ = append(out.Packages[0].Licenses, "changed")
	_ = append(out.Packages[0].Locations, "changed")
	if !reflect.DeepEqual(out, viaJSON(t, &inv)) {
		t.Fatalf("appending to a decoded list changed another: %#v", out.Packages)
	}
}

// FuzzRoundTrip: any inventory JSON describes decodes from this encoding
// to what a JSON round trip gives; and no input makes Decode panic, while
// whatever it accepts encodes and decodes to the same inventory.
func FuzzRoundTrip(f *testing.F) {
	inv := sample()
	js, _ := json.Marshal(&inv)
	f.Add(js)
	f.Add(Append(nil, &inv))
	f.Add([]byte(`{"layers":[],"packages":[{"ecosystem":"npm","name":"a","dev":true,"locations":[]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in inventory.Inventory
		if json.Unmarshal(data, &in) == nil {
			if got, want := roundTrip(t, &in), viaJSON(t, &in); !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip\n got %#v\nwant %#v", got, want)
			}
		}
		var dec inventory.Inventory
		if Decode(data, &dec) == nil {
			if again := roundTrip(t, &dec); !reflect.DeepEqual(again, dec) {
				t.Fatalf("re-encoding a decoded inventory changed it\n got %#v\nwant %#v", again, dec)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	inv := sample()
	base := inv.Packages
	inv.Packages = nil
	for i := range 150 {
		p := base[i%len(base)]
		p.Name += string(rune('a' + i%26))
		inv.Packages = append(inv.Packages, p)
	}
	enc := Append(nil, &inv)
	raw, _ := cbor.Marshal(&inv)
	b.Run("invcodec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out inventory.Inventory
			if err := Decode(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cbor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out inventory.Inventory
			if err := cbor.Unmarshal(raw, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
