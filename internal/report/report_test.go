package report

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/report/internal/fixture"
	"berth.dev/berth/internal/report/internal/schematest"
	"berth.dev/berth/internal/report/table"
)

var fixedOpts = Options{
	Created:     time.Date(2026, 11, 22, 14, 30, 0, 0, time.UTC),
	DocumentID:  uuid.MustParse("0b4a5c1e-3f7d-4e2a-9c61-5d8e7f6a1b20"),
	ToolVersion: "1.0.0-test",
	Table:       &table.Options{},
}

func TestSBOMFormatNames(t *testing.T) {
	if got, want := SBOMFormatNames(), []string{"table", "json", "cyclonedx", "spdx"}; !slices.Equal(got, want) {
		t.Errorf("SBOMFormatNames() = %v, want %v", got, want)
	}
	for _, f := range SBOMFormats() {
		if f.Description == "" || f.MediaType == "" || f.Encoder == nil {
			t.Errorf("format %q is incomplete", f.Name)
		}
	}
}

// TestEncodeSBOMMatchesFormats checks that each name reaches the encoder
// it names, by what each encoder's output must look like.
func TestEncodeSBOMMatchesFormats(t *testing.T) {
	inv := fixture.KitchenSink(t)
	checks := map[string]func(t *testing.T, out []byte){
		"cyclonedx": func(t *testing.T, out []byte) { schematest.CycloneDX(t, out) },
		"spdx":      func(t *testing.T, out []byte) { schematest.SPDX(t, out) },
		"json": func(t *testing.T, out []byte) {
			if !bytes.HasPrefix(out, []byte("{\n  \"source\": ")) {
				t.Errorf("not inventory JSON: %.40q", out)
			}
		},
		"table": func(t *testing.T, out []byte) {
			if !bytes.HasPrefix(out, []byte("ECOSYSTEM  NAME")) {
				t.Errorf("not a plain table: %.40q", out)
			}
		},
	}
	for _, name := range SBOMFormatNames() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := EncodeSBOM(&buf, strings.ToUpper(name), inv, fixedOpts); err != nil {
				t.Fatal(err)
			}
			checks[name](t, buf.Bytes())
		})
	}
}

func TestEncodeSBOMErrors(t *testing.T) {
	var buf bytes.Buffer
	err := EncodeSBOM(&buf, "syft-json", &inventory.Inventory{}, fixedOpts)
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "cyclonedx, spdx") {
		t.Errorf("unknown format: %v", err)
	}
	if err := EncodeSBOM(&buf, "spdx", nil, fixedOpts); err == nil {
		t.Error("nil inventory accepted")
	}
	if buf.Len() != 0 {
		t.Errorf("failed calls wrote %q", buf.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsReported(t *testing.T) {
	inv := fixture.KitchenSink(t)
	for _, name := range SBOMFormatNames() {
		err := EncodeSBOM(failingWriter{}, name, inv, fixedOpts)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: write error reported as %v", name, err)
		}
	}
}

func TestTableDetectsPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opts := fixedOpts
	opts.Table = nil
	if err := EncodeSBOM(w, "table", &inventory.Inventory{Source: "x"}, opts); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "ECOSYSTEM  NAME  VERSION  SOURCE  LAYER  LOCATION\n" {
		t.Errorf("piped table = %q, want the plain header only", got)
	}
}

// BenchmarkEncodeSBOM2000 measures every format on the same 2,000-package
// inventory, so the figures compare.
func BenchmarkEncodeSBOM2000(b *testing.B) {
	inv := fixture.Synthetic(2000)
	for _, name := range SBOMFormatNames() {
		b.Run(name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := EncodeSBOM(&buf, name, inv, fixedOpts); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(buf.Len()))
		})
	}
}
