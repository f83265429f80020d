package pdm

import (
	"os"
	"reflect"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/app/pdm.lock")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/app/pdm.lock", "pdm-lock")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"certifi@2024.2.2",
		"iniconfig@2.0.0 dev",
		"pytest@8.0.2 dev -> [iniconfig]",
		"requests@2.31.0 -> [PySocks certifi urllib3]",
		"urllib3@2.2.1",
	}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"[[package]]\nname = \"x\"\nversion = \"1\"\n", "[metadata]\n[[package]]\nname = \"x\"\n", "[metadata"} {
		if _, err := Parse([]byte(bad), "/pdm.lock", "pdm-lock"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/app/pdm.lock")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
