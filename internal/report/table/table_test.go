package table

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/rivo/uniseg"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/internal/fixture"
)

func encode(t testing.TB, inv *inventory.Inventory, opts Options) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, inv, opts); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.String()
}

func TestKitchenSinkGolden(t *testing.T) {
	inv := fixture.KitchenSink(t)
	for name, opts := range map[string]Options{
		"plain":    {},
		"terminal": {Terminal: true, Width: 100, Color: true},
	} {
		t.Run(name, func(t *testing.T) {
			out := encode(t, inv, opts)
			golden.Check(t, filepath.Join("testdata", "kitchen-sink."+name+".txt"), []byte(out))
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if name == "plain" {
				if len(lines) != len(inv.Packages)+1 {
					t.Errorf("%d lines, want header + %d packages", len(lines), len(inv.Packages))
				}
				if strings.Contains(out, "\x1b") {
					t.Error("plain output holds escape sequences")
				}
			}
			if name == "terminal" {
				for _, l := range lines {
					if w := uniseg.StringWidth(strings.NewReplacer(bold, "", reset, "").Replace(l)); w > 100 {
						t.Errorf("line of %d cells in a 100-cell terminal: %q", w, l)
					}
				}
				if !strings.HasPrefix(lines[2], bold+"ECOSYSTEM") {
					t.Errorf("header not bold: %q", lines[2])
				}
				if want := "138 packages: 123 deb, 7 pypi, 4 golang, 3 npm, 1 maven"; lines[len(lines)-1] != want {
					t.Errorf("summary %q, want %q", lines[len(lines)-1], want)
				}
			}
		})
	}
}

func TestRowContents(t *testing.T) {
	out := encode(t, fixture.KitchenSink(t), Options{})
	for _, want := range [][]string{
		{"deb", "python3", "3.11.2-1+b1", "python3-defaults 3.11.2-1", "aabee3329b0c", "/var/lib/dpkg/status"},
		{"deb", "libc6", "2.36-9+deb12u14", "glibc", "3652b7f60bc0", "/var/lib/dpkg/status"},
		{"npm", "lodash", "4.17.15", "48eb869ab9ab", "/app/node_modules/lodash/package.json", "(+1)"},
		{"maven", "org.apache.commons:commons-lang3", "3.12.0", "aabee3329b0c", "/usr/share/java/commons-lang3.jar"},
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Join(strings.Fields(line), " ") == strings.Join(want, " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("no row %q", want)
		}
	}
}

func TestAwkwardInputs(t *testing.T) {
	for _, tc := range fixture.AwkwardInputs() {
		t.Run(tc.Name, func(t *testing.T) {
			for name, opts := range map[string]Options{"plain": {}, "terminal": {Terminal: true, Width: 60, Color: true}} {
				out := encode(t, tc.Inv, opts)
				golden.Check(t, filepath.Join("testdata", "awkward", strings.ReplaceAll(tc.Name, " ", "-")+"."+name+".txt"), []byte(out))
				if n := strings.Count(out, "\n"); n < len(tc.Inv.Packages)+1 {
					t.Errorf("%s: %d lines for %d packages", name, n, len(tc.Inv.Packages))
				}
				if strings.Contains(strings.NewReplacer(bold, "", reset, "").Replace(out), "\x1b") {
					t.Errorf("%s: raw escape sequence in output", name)
				}
			}
		})
	}
}

func TestHostileNamesAreEscaped(t *testing.T) {
	inv := &inventory.Inventory{Packages: []inventory.Package{{
		Ecosystem: inventory.NPM, Name: "evil\x1b[2J\x1b]0;pwned\x07", Version: "1\r\n2", Locations: []string{"/a\tb"},
	}, {
		Ecosystem: inventory.NPM, Name: "bad\xffutf8", Version: "1",
	}, {
		Ecosystem: inventory.NPM, Name: "rev\u202egnp.exe", Version: "1",
	}}}
	out := encode(t, inv, Options{Terminal: true, Width: 80, Color: true})
	out = strings.NewReplacer(bold, "", reset, "").Replace(out)
	for _, c := range []string{"\x1b", "\x07", "\r", "\t", "\xff", "\u202e"} {
		if strings.Contains(out, c) {
			t.Errorf("output holds %q", c)
		}
	}
	for _, want := range []string{`evil\x1b[2J\x1b]0;pwned\a`, `1\r\n2`, `/a\tb`, "bad\uFFFDutf8", `rev\u202egnp.exe`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly-10", 10, "exactly-10"},
		{"a-longer-location", 10, "a-longer-…"},
		{"日本語のパッケージ", 9, "日本語の…"},
		{"e\u0301e\u0301e\u0301e\u0301", 3, "e\u0301e\u0301…"},
	}
	for _, tt := range tests {
		got := truncate(tt.in, tt.width)
		if got != tt.want || uniseg.StringWidth(got) > tt.width {
			t.Errorf("truncate(%q, %d) = %q (width %d), want %q", tt.in, tt.width, got, uniseg.StringWidth(got), tt.want)
		}
	}
}

func TestSource(t *testing.T) {
	tests := []struct {
		p    inventory.Package
		want string
	}{
		{inventory.Package{Name: "libc6", Version: "2.36", SourceName: "glibc", SourceVersion: "2.36"}, "glibc"},
		{inventory.Package{Name: "python3", Version: "3.11.2-1+b1", SourceName: "python3-defaults", SourceVersion: "3.11.2-1"}, "python3-defaults 3.11.2-1"},
		{inventory.Package{Name: "bash", Version: "5.2", SourceName: "bash", SourceVersion: "5.2"}, ""},
		{inventory.Package{Name: "bash", Version: "5.2+b1", SourceName: "bash", SourceVersion: "5.2"}, "bash 5.2"},
		{inventory.Package{Name: "lodash", Version: "4"}, ""},
		{inventory.Package{Name: "libc6", Version: "2.36", SourceName: "glibc"}, "glibc"},
	}
	for _, tt := range tests {
		if got := source(&tt.p); got != tt.want {
			t.Errorf("source(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		widths []int
		width  int
		want   []int
	}{
		{[]int{9, 20, 10, 10, 12, 30}, 200, []int{9, 20, 10, 10, 12, 30}}, // fits already
		{[]int{9, 20, 10, 10, 12, 30}, 90, []int{9, 19, 10, 10, 12, 19}},  // the widest give
		{[]int{9, 40, 35, 27, 12, 49}, 100, []int{9, 17, 17, 17, 12, 17}}, // all share the cut
		{[]int{9, 40, 20, 30, 12, 60}, 20, []int{9, 8, 8, 8, 12, 8}},      // never below the minimum
		{[]int{9, 5, 5, 5, 12, 60}, 40, []int{9, 5, 5, 5, 12, 8}},         // short columns stay whole
	}
	for _, tt := range tests {
		got := slices.Clone(tt.widths)
		fit(got, tt.width)
		if !slices.Equal(got, tt.want) {
			t.Errorf("fit(%v, %d) = %v, want %v", tt.widths, tt.width, got, tt.want)
		}
	}
}

func BenchmarkEncode2000(b *testing.B) {
	inv := fixture.Synthetic(2000)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Encode(&buf, inv, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// FuzzEncode checks that no package data, however hostile, puts a control
// character on the terminal or breaks the one-row-per-package shape.
func FuzzEncode(f *testing.F) {
	f.Add("npm", "evil\x1b[2J", "1\r\n2", "/a\tb", "src", 40)
	f.Add("", "日本語のパッケージ", "e\u0301", "", "", 9)
	f.Fuzz(func(t *testing.T, eco, name, version, loc, src string, width int) {
		inv := &inventory.Inventory{Packages: []inventory.Package{
			{Ecosystem: inventory.Ecosystem(eco), Name: name, Version: version, Locations: []string{loc}, SourceName: src, Layer: src},
			{Ecosystem: inventory.Ecosystem(eco), Name: src},
		}}
		for _, opts := range []Options{{}, {Terminal: true, Width: width % 300, Color: true}} {
			out := strings.NewReplacer(bold, "", reset, "").Replace(encode(t, inv, opts))
			for _, r := range out {
				if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Bidi_Control, r)) {
					t.Fatalf("control character %U in output %q", r, out)
				}
			}
			rows := strings.Count(out, "\n")
			if !opts.Terminal && rows != 3 {
				t.Fatalf("%d lines for header and 2 packages: %q", rows, out)
			}
		}
	})
}
