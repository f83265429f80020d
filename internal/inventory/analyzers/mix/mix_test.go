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

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/mix.lock")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
