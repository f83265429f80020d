package image

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func TestLinks(t *testing.T) {
	m := map[string]string{"lib": "usr/lib", "bin": "usr/bin", "etc/os-release": "../usr/lib/os-release", "a b": "<&>",
		"odd:name12:x": "\"quoted\"\n", "empty-target": "", "é": "\xff"}
	l := NewLinks(m)
	var bytes int64
	for p, t := range m {
		bytes += int64(len(p) + len(t))
	}
	if l.Len() != len(m) || l.Bytes() != bytes {
		t.Errorf("len %d, bytes %d", l.Len(), l.Bytes())
	}
	data, err := json.Marshal(struct{ L *Links }{l})
	if err != nil {
		t.Fatal(err)
	}
	var back struct{ L *Links }
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, got := range []*Links{l, back.L} {
		if !reflect.DeepEqual(maps.Collect(got.All()), m) {
			t.Errorf("links %q, want %q", maps.Collect(got.All()), m)
		}
		for p, want := range m {
			if target, ok := got.Lookup(p); !ok || target != want {
				t.Errorf("Lookup(%q) = %q, %v", p, target, ok)
			}
		}
		for _, p := range []string{"", "a", "li", "libx", "zzz", "etc"} {
			if target, ok := got.Lookup(p); ok {
				t.Errorf("Lookup(%q) = %q, a link", p, target)
			}
		}
	}
	var empty *Links
	if _, ok := empty.Lookup("lib"); ok || empty.Len() != 0 || empty.Bytes() != 0 {
		t.Error("nil Links is not empty")
	}
	for _, bad := range []string{`"3:abc"`, `"1:b1:x1:a1:y"`, `"1:a1:x1:a1:y"`, `"99:a1:b"`, `"-1:a1:b"`, `":a1:b"`, `7`} {
		var l Links
		if err := json.Unmarshal([]byte(bad), &l); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// Names that are UTF-8 are written as they are.
	plain, err := json.Marshal(NewLinks(map[string]string{"lib": "usr/lib", "bin": "usr/bin"}))
	if err != nil || string(plain) != `"3:bin7:usr/bin3:lib7:usr/lib"` {
		t.Errorf("encoded as %s (%v)", plain, err)
	}
	if !strings.HasPrefix(string(data), `{"L":"=`) {
		t.Errorf("links with a Latin-1 name not in base64: %s", data)
	}
}
