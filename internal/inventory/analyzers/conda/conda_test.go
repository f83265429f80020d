package conda

import (
	"context"
	"os"
	"reflect"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestAnalyze(t *testing.T) {
	res, err := Analyzer{}.Analyze(context.Background(), os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sets) != 1 || len(res.Warns) != 0 {
		t.Fatalf("result %+v", res)
	}
	p := res.Sets[0].Packages[0]
	want := []string{"numpy@1.26.4 -> [libblas libcblas libgcc-ng python python_abi]"}
	if got := analyzertest.Summary(res.Sets[0].Packages); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q", got)
	}
	if p.Ecosystem != "conda" || !reflect.DeepEqual(p.Licenses, []string{"BSD-3-Clause"}) || p.Locations[0] != "/env/conda-meta/numpy-1.26.4-py311h64a7726_0.json" {
		t.Errorf("package %+v", p)
	}
	for _, bad := range []string{`{"name": "x"}`, `[]`} {
		if _, err := Parse([]byte(bad), "/x.json", "conda-meta"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if isRecord("env/conda-meta/history") || !isRecord("opt/conda/conda-meta/x-1-0.json") || isRecord("x/conda-meta.json") {
		t.Error("isRecord")
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/env/conda-meta/numpy-1.26.4-py311h64a7726_0.json")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
