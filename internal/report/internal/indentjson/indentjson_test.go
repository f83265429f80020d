package indentjson

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
)

// reference is what the package must reproduce byte for byte.
func reference(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	type inner struct {
		A []int          `json:"a"`
		B map[string]any `json:"b"`
	}
	tests := []struct {
		name string
		v    any
	}{
		{"scalar", 42},
		{"string with quotes and escapes", "say \"hi\"\\ \n <b>&</b> \u2028 {[,:]}"},
		{"empty object", map[string]any{}},
		{"empty array", []int{}},
		{"null", nil},
		{"nested", map[string]any{"x": []any{1, "two", nil, true, map[string]any{}, []any{}, []any{[]any{}}}, "y": map[string]any{"z": 1.5e-9}}},
		{"struct", inner{A: []int{1, 2}, B: map[string]any{"k\"ey": "v,a:l{u}e"}}},
		{"raw message", json.RawMessage(`{"a" : [ 1 , 2 ] }`)},
		{"backslash before quote", []string{`\`, `\\`, `a\"b`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bytes.Buffer
			if err := Encode(&got, tt.v); err != nil {
				t.Fatal(err)
			}
			if want := reference(t, tt.v); !bytes.Equal(got.Bytes(), want) {
				t.Errorf("got\n%s\nwant\n%s", got.Bytes(), want)
			}
		})
	}
}

func TestEncodeReportsMarshalErrors(t *testing.T) {
	if err := Encode(&bytes.Buffer{}, map[string]any{"f": func() {}}); err == nil {
		t.Error("a func value encoded without error")
	}
}

func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"c\"d"}],"e":{}}`, `[]`, `"x"`, `[[[]],{}]`, `{"\\":"\\\\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		var got bytes.Buffer
		if err := Encode(&got, v); err != nil {
			t.Fatal(err)
		}
		if want := reference(t, v); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("input %q:\ngot\n%s\nwant\n%s", data, got.Bytes(), want)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	doc := make([]map[string]any, 2000)
	for i := range doc {
		doc[i] = map[string]any{"name": "package", "version": "1.2.3", "purl": "pkg:npm/package@1.2.3", "licenses": []string{"MIT"}}
	}
	b.Run("indentjson", func(b *testing.B) {
		for b.Loop() {
			Encode(&bytes.Buffer{}, doc)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			reference(b, doc)
		}
	})
}

// TestIndenterAcrossWrites: the indenter keeps its state between writes,
// so a document split anywhere (inside a string, after a backslash) comes
// out the same.
func TestIndenterAcrossWrites(t *testing.T) {
	v := map[string]any{"a\\\"b": []any{"x\\", map[string]any{}, []any{}, 1}, "c": "{[,:]}"}
	want := reference(t, v)
	var compact bytes.Buffer
	enc := json.NewEncoder(&compact)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	src := compact.Bytes()
	for split := 0; split <= len(src); split++ {
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		d := &indenter{w: bw}
		d.Write(src[:split])
		d.Write(src[split:])
		bw.Flush()
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("split at %d:\ngot\n%s\nwant\n%s", split, got.Bytes(), want)
		}
	}
}
