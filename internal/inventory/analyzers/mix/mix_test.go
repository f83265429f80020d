package mix

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/mix.lock")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/mix.lock", "mix-lock")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"decimal@2.1.1", "jason@1.4.1 -> [decimal]", "my_fork@", "plug_crypto@1.2.5", "telemetry@1.2.1"}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if out, _ := json.Marshal(pkgs); strings.Contains(string(out), "s3cret") {
		t.Error("the git URL's token is in the output")
	}
	if _, err := Parse([]byte(`  "x": {:hex, 42}`), "/mix.lock", "mix-lock"); err == nil {
		t.Error("not a map, parsed")
	}
	if _, err := Parse([]byte("%{\n  \"x\": {:hex, 42}\n}"), "/mix.lock", "mix-lock"); err == nil {
		t.Error("a hex entry without name and version parsed")
	}
	if isLock("app/deps/jason/mix.lock") || !isLock("app/mix.lock") {
		t.Error("isLock")
	}
}

// TestParseSkipsBadEntries: a hex entry without name and version is
// named in the error; the entries around it are still read.
func TestParseSkipsBadEntries(t *testing.T) {
	tests := []struct {
		name, lock string
		want       []string
		wantErr    string
	}{
		{"truncated tuple", "%{\n  \"bunt\": {:hex, :bunt, \"1.0.0\", \"081c\", [:mix], [], \"hexpm\", \"dc5f\"},\n  \"certifi\": {:hex, },\n}\n",
			[]string{"bunt@1.0.0"}, `skipped: line 3: hex entry "certifi" has no package name and version`},
		{"clean", "%{\n  \"bunt\": {:hex, :bunt, \"1.0.0\", \"081c\", [:mix], [], \"hexpm\", \"dc5f\"},\n}\n", []string{"bunt@1.0.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := Parse([]byte(tt.lock), "/app/mix.lock", "mix-lock")
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/mix.lock")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParsePartial(f, Parse, data)
}
