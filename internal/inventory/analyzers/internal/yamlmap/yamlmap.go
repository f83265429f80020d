// Package yamlmap decodes YAML lockfiles in linear time. gopkg.in/yaml.v3
// checks every mapping it decodes into a Go map or struct for repeated
// keys by comparing each key with every later one, and formats an error
// for each repeat: a 4 MiB pnpm-lock.yaml of repeated entries took 45 s
// and 26 GB of allocations. Here a mapping is read in one pass: into a
// struct, only the keys the struct names are kept (a file cannot slow the
// decoder down with keys nobody reads); into a Map, key by key. A
// repeated key keeps its last value, as Yarn's and pnpm's own parsers do.
package yamlmap

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Map is a map[string]V that decodes from a YAML mapping in one pass.
// Structs decoded with Decode must use Map, never a plain map, for
// mappings a file controls the size of.
type Map[V any] map[string]V

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Map[V]) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		*m = nil
		return nil
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping", n.Line)
	}
	out := make(Map[V], len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: mapping key is not a scalar", k.Line)
		}
		var v V
		if err := Decode(n.Content[i+1], &v); err != nil {
			return err
		}
		out[k.Value] = v
	}
	*m = out
	return nil
}

// Unmarshal parses data as one YAML document and decodes it into out
// with Decode.
func Unmarshal(data []byte, out any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return Decode(doc.Content[0], out)
}

// Decode decodes n into out (a pointer). A mapping decoded into a struct
// keeps only the keys the struct's fields name (yaml tags, inline structs
// included), the last of a repeated key; everything else is decoded as
// yaml.v3 does.
func Decode(n *yaml.Node, out any) error {
	t := reflect.TypeOf(out)
	if n.Kind == yaml.MappingNode && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct &&
		t.Elem() != nodeType && !t.Implements(unmarshaler) {
		n = onlyKeys(n, fieldNames(t.Elem()))
	}
	return n.Decode(out)
}

var (
	unmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType    = reflect.TypeFor[yaml.Node]()
)

// onlyKeys returns a copy of the mapping n holding only the keys in
// names, each once, with its last value.
func onlyKeys(n *yaml.Node, names map[string]bool) *yaml.Node {
	at := map[string]int{}
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode || !names[k.Value] {
			continue
		}
		if j, ok := at[k.Value]; ok {
			c.Content[j+1] = n.Content[i+1]
			continue
		}
		at[k.Value] = len(c.Content)
		c.Content = append(c.Content, k, n.Content[i+1])
	}
	return &c
}

var fieldCache sync.Map // reflect.Type → map[string]bool

// fieldNames lists the mapping keys yaml.v3 decodes into struct t.
func fieldNames(t reflect.Type) map[string]bool {
	if v, ok := fieldCache.Load(t); ok {
		return v.(map[string]bool)
	}
	names := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k := range fieldNames(f.Type) {
				names[k] = true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		names[name] = true
	}
	fieldCache.Store(t, names)
	return names
}
