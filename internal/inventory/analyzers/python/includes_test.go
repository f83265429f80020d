package python

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf16"

	"berth.dev/berth/internal/inventory/analyzertest"
)

// TestRequirementsIncludes: -r files add their pins (relative to the
// including file, nested, each once however often included, cycles
// cut), -c files pin what the requirements name without a version and
// install nothing themselves; a missing include is a warning naming it.
func TestRequirementsIncludes(t *testing.T) {
	files := fstest.MapFS{
		"app/requirements.txt":       {Data: []byte("-r requirements/base.txt\n--requirement=requirements-extra.txt\n-c constraints.txt\nrequests>=2\nFlask\nmissing-one\n")},
		"app/requirements/base.txt":  {Data: []byte("urllib3==1.26.12\n-r ../requirements.txt\n-r ./base.txt\n")},
		"app/requirements-extra.txt": {Data: []byte("idna==3.3 # pinned\n-r requirements/base.txt\n-r nowhere.txt\n")},
		"app/constraints.txt":        {Data: []byte("requests==2.28.1\nflask==2.2.2\nsix==1.16.0\n-r more-constraints.txt\n")},
		"app/more-constraints.txt":   {Data: []byte("missing_one==0.1\n")},
		// Not an include of anything: read as its own file only.
		"other/constraints.txt": {Data: []byte("jinja2==3.1.2\n")},
	}
	res, err := RequirementsAnalyzer{}.Analyze(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, s := range res.Sets {
		for _, p := range s.Packages {
			got[s.Origin] = append(got[s.Origin], p.Name+"@"+p.Version+" "+p.Locations[0])
		}
		sort.Strings(got[s.Origin])
	}
	// base.txt includes requirements.txt back: the cycle makes every
	// root reach every file, and each file is read once per root.
	all := []string{
		"flask@2.2.2 /app/constraints.txt",
		"idna@3.3 /app/requirements-extra.txt",
		"missing_one@0.1 /app/more-constraints.txt",
		"requests@2.28.1 /app/constraints.txt",
		"urllib3@1.26.12 /app/requirements/base.txt",
	}
	want := map[string][]string{"app/requirements.txt": all, "app/requirements-extra.txt": all, "app/requirements/base.txt": all}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, w := range res.Warns {
		if !strings.Contains(w, "/app/nowhere.txt") {
			t.Errorf("unexpected warning %q", w)
		}
	}
	if len(res.Warns) != 3 { // once per root that reaches it
		t.Errorf("warnings %q, want the missing include named once per file that reaches it", res.Warns)
	}
}

func TestIncludeLineAndPath(t *testing.T) {
	for _, tt := range []struct{ line, kind, target string }{
		{"-r a.txt", "r", "a.txt"},
		{"-ra.txt", "r", "a.txt"},
		{"--requirement a.txt  # c", "r", "a.txt"},
		{"--requirement=a.txt", "r", "a.txt"},
		{"-c c.txt", "c", "c.txt"},
		{"--constraint=c.txt", "c", "c.txt"},
		{"--require-hashes", "", ""},
		{"-e .", "", ""},
	} {
		kind, target, _ := includeLine(tt.line)
		if kind != tt.kind || target != tt.target {
			t.Errorf("includeLine(%q) = %q %q", tt.line, kind, target)
		}
	}
	for _, tt := range []struct{ from, target, want string }{
		{"app/requirements.txt", "base.txt", "app/base.txt"},
		{"app/r/x.txt", "../y.txt", "app/y.txt"},
		{"app/requirements.txt", "/etc/r.txt", "etc/r.txt"},
		{"requirements.txt", "../../etc/passwd", ""},
		{"app/requirements.txt", "https://example.com/r.txt", ""},
	} {
		if got, _ := includePath(tt.from, tt.target); got != tt.want {
			t.Errorf("includePath(%q, %q) = %q, want %q", tt.from, tt.target, got, tt.want)
		}
	}
}

// TestMetadataHeadersAnyCase: header names are case-insensitive, so a
// lower-case "version:" still names the version.
func TestMetadataHeadersAnyCase(t *testing.T) {
	pkgs, err := ParseMetadata([]byte("metadata-version: 2.1\nname: Foo\nversion: 1.2.3\nLICENSE-EXPRESSION: MIT\n\nbody\n"), "/x/METADATA", "python-installed")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || pkgs[0].Name != "Foo" || pkgs[0].Version != "1.2.3" || !reflect.DeepEqual(pkgs[0].Licenses, []string{"MIT"}) {
		t.Errorf("got %+v", pkgs)
	}
}

// TestMetadataBodyWithoutSeparator: a line that is no header ends the
// headers, as in Python's email parser, so the name and version before
// it still count; garbage before any header is still an error.
func TestMetadataBodyWithoutSeparator(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
		wantErr    bool
	}{
		{"keywords continued unindented", "Metadata-Version: 2.1\nName: passlib\nVersion: 1.7.4\nKeywords: password hash\ncrypt md5-crypt\nPlatform: UNKNOWN\n", []string{"passlib@1.7.4"}, false},
		{"version after the break is body", "Name: x\nnot a header\nVersion: 1.0\n", nil, true},
		{"no header at all", "just some text\nName: x\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := ParseMetadata([]byte(tt.data), "/usr/lib/python3/dist-packages/x-1.dist-info/METADATA", "python-installed")
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if got := analyzertest.Summary(pkgs); len(got)+len(tt.want) > 0 && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestRequirementsPins: what is a pin and what is not, line by line.
func TestRequirementsPins(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"options after the pin", "foo==1.0 --hash=sha256:123 --config-settings=bar\n", []string{"foo@1.0"}},
		{"an option where the version should be", "foo10== --hash=sha256:123\nfoo15== --config-settings --hash=sha256:1\n", nil},
		{"arbitrary equality", "yolo===1.0\nlegacy===2013b0\n", []string{"legacy@2013b0", "yolo@1.0"}},
		{"backslash on the last line", "pkg1==1.0 \\", []string{"pkg1@1.0"}},
		{"backslash joining a hash", "pkg2==2.0 \\\n  --hash=sha256:456\n", []string{"pkg2@2.0"}},
		{"ranges are not pins", "a>=1.0\nb==1.*\nc~=1.1\nd==1.0,<2\n", nil},
		{"template syntax is no name", "{%if x|lower=='click'-%}\nfoo|bar=='1.2.4'\nfoo{bar}==%%\nfoo,bar&&foobar==1.2.3\nfoo=='invalid-version'\nok-name==1.0+local.1\n", []string{"ok-name@1.0+local.1"}},
		{"UTF-8 byte order mark", "\xEF\xBB\xBFattrs==20.3.0\n", []string{"attrs@20.3.0"}},
		{"UTF-16 LE", utf16LE("attrs==20.3.0\r\nsix==1.16.0\r\n"), []string{"attrs@20.3.0", "six@1.16.0"}},
		{"UTF-16 BE", utf16BE("attrs==20.3.0\n"), []string{"attrs@20.3.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := ParseRequirements([]byte(tt.file), "/app/requirements.txt", "pip-requirements")
			if err != nil {
				t.Fatal(err)
			}
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// utf16LE and utf16BE encode s as Windows editors save a requirements
// file: a byte order mark, then UTF-16.
func utf16LE(s string) string {
	out := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return string(out)
}

func utf16BE(s string) string {
	out := []byte{0xFE, 0xFF}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u>>8), byte(u))
	}
	return string(out)
}
