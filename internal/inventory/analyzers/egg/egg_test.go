package egg

import (
	"archive/zip"
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory/analyzertest"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/SQLAlchemy-1.3.24-py3.11.egg")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data, "/usr/lib/python3/site-packages/SQLAlchemy-1.3.24-py3.11.egg", "python-egg")
	if err != nil {
		t.Fatal(err)
	}
	if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, []string{"SQLAlchemy@1.3.24"}) || pkgs[0].Ecosystem != "pypi" || !reflect.DeepEqual(pkgs[0].Licenses, []string{"MIT"}) {
		t.Errorf("got %+v", pkgs)
	}
}

// TestBadEggs: not a zip, no metadata, and a PKG-INFO that inflates past
// 1 MiB (a small zip bomb) are warnings, read no further.
func TestBadEggs(t *testing.T) {
	zipOf := func(name, content string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
		zw.Close()
		return buf.Bytes()
	}
	bomb := zipOf("EGG-INFO/PKG-INFO", "Name: x\nVersion: 1\n\n"+strings.Repeat("A", 4<<20))
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	for name, data := range map[string][]byte{
		"not a zip":   []byte("PK but not really"),
		"no metadata": zipOf("EGG-INFO/top_level.txt", "x\n"),
		"bomb":        bomb,
	} {
		if pkgs, err := Parse(data, "/x.egg", "python-egg"); err == nil {
			t.Errorf("%s: parsed, %+v", name, pkgs)
		}
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/SQLAlchemy-1.3.24-py3.11.egg")
	if err != nil {
		f.Fatal(err)
	}
	analyzertest.FuzzParse(f, Parse, data)
}
