package yamlmap

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type entry struct {
	Version string      `yaml:"version"`
	Deps    Map[string] `yaml:"dependencies"`
}

type lock struct {
	Packages Map[entry] `yaml:"packages"`
	Extra    yaml.Node  `yaml:"extra"`
}

func TestLastKeyWinsAndUnknownKeysIgnored(t *testing.T) {
	var l lock
	err := Unmarshal([]byte(`
packages:
  a@1:
    version: "0"
    version: "1"
    junk: [1, 2]
    dependencies: {b: "2", b: "3"}
  a@1:
    version: "1.0.1"
extra: {specifier: x, version: y}
`), &l)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Packages) != 1 || l.Packages["a@1"].Version != "1.0.1" {
		t.Errorf("packages %+v", l.Packages)
	}
	var ref struct {
		Version string `yaml:"version"`
	}
	if err := Decode(&l.Extra, &ref); err != nil || ref.Version != "y" {
		t.Errorf("a yaml.Node field keeps every key: %+v, %v", ref, err)
	}
}

// TestLinear: a mapping of many keys, repeated or unknown, decodes with
// allocations in proportion to its size (yaml.v3 alone formats an error
// per pair of repeated keys: quadratic).
func TestLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("packages:\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "  p%d:\n    version: \"1\"\n  same:\n    version: \"%d\"\n", i, i)
	}
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "junk%d: 1\n", i)
	}
	data := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var l lock
	if err := Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if len(l.Packages) != 20001 || l.Packages["same"].Version != "19999" {
		t.Errorf("%d packages, same = %+v", len(l.Packages), l.Packages["same"])
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 200*uint64(len(data)) {
		t.Errorf("%d bytes of YAML allocated %d bytes", len(data), alloc)
	}
}
