package ruby

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"berth.dev/berth/internal/golden"
	"berth.dev/berth/internal/inventory"
)

func TestGolden(t *testing.T) {
	tests := []struct {
		dir      string
		analyzer inventory.Analyzer
	}{
		{"gems", GemspecAnalyzer{}},
		{"bundle", LockAnalyzer{}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			res, err := tt.analyzer.Analyze(context.Background(), os.DirFS(filepath.Join("testdata", tt.dir)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden.Check(t, filepath.Join("testdata", "golden", tt.dir+"."+tt.analyzer.Name()+".json"), got)
		})
	}
}

func TestParseGemspecForms(t *testing.T) {
	tests := []struct {
		name, src       string
		wantName, wantV string
		wantLicenses    []string
	}{
		{"rubygems", "Gem::Specification.new do |s|\n  s.name = \"rack\".freeze\n  s.version = \"2.2.8\"\n  s.licenses = [\"MIT\".freeze]\nend\n", "rack", "2.2.8", []string{"MIT"}},
		{"hand-written", "Gem::Specification.new do |spec|\n  spec.name    = 'x'\n  spec.version = Gem::Version.new('1.0')\n  spec.license = 'Apache-2.0'\nend\n", "x", "1.0", []string{"Apache-2.0"}},
	}
	for _, tt := range tests {
		pkgs, err := ParseGemspec([]byte(tt.src), "/g", "gemspec")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		p := pkgs[0]
		if p.Name != tt.wantName || p.Version != tt.wantV || strings.Join(p.Licenses, ",") != strings.Join(tt.wantLicenses, ",") {
			t.Errorf("%s: got %+v", tt.name, p)
		}
	}
}

func TestBadInput(t *testing.T) {
	lock, err := os.ReadFile("testdata/bundle/Gemfile.lock")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("testdata/gems/usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		analyzer inventory.Analyzer
		good     string
		goodData []byte
		bad      string
		data     []byte
	}{
		{LockAnalyzer{}, "a/Gemfile.lock", lock, "b/Gemfile.lock", []byte("GEM\n  specs:\n    rake 13.0.6\n")},
		{LockAnalyzer{}, "a/Gemfile.lock", lock, "b/Gemfile.lock", []byte("GEM\n  specs:\n    rake ()\n")},
		{LockAnalyzer{}, "a/Gemfile.lock", lock, "b/Gemfile.lock", []byte("   \n")},
		{GemspecAnalyzer{}, "a/specifications/rake.gemspec", spec, "b/specifications/x.gemspec", spec[:120]},
		{GemspecAnalyzer{}, "a/specifications/rake.gemspec", spec, "b/specifications/y.gemspec", []byte("\x00\x01binary")},
	}
	for _, tt := range tests {
		files := fstest.MapFS{tt.good: {Data: tt.goodData}, tt.bad: {Data: tt.data}}
		res, err := tt.analyzer.Analyze(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/"+tt.bad+": ") {
			t.Errorf("%s %q: warnings = %q, want one naming /%s", tt.analyzer.Name(), tt.data, res.Warns, tt.bad)
		}
		if len(res.Sets) != 1 || res.Sets[0].Origin != tt.good {
			t.Errorf("%s: sets = %+v, want %s", tt.analyzer.Name(), res.Sets, tt.good)
		}
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		analyzer inventory.Analyzer
		path     string
		want     bool
	}{
		{GemspecAnalyzer{}, "usr/local/bundle/specifications/rack-2.2.8.gemspec", true},
		{GemspecAnalyzer{}, "usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec", true},
		{GemspecAnalyzer{}, "usr/local/bundle/gems/rack-2.2.8/rack.gemspec", false},
		{LockAnalyzer{}, "app/Gemfile.lock", true},
		{LockAnalyzer{}, "app/gems.locked", true},
		{LockAnalyzer{}, "app/Gemfile", false},
	}
	for _, tt := range tests {
		if got := tt.analyzer.Required(tt.path, fileInfo{mode: 0o644}); got != tt.want {
			t.Errorf("%s.Required(%q) = %v, want %v", tt.analyzer.Name(), tt.path, got, tt.want)
		}
	}
}

func FuzzParseGemfileLock(f *testing.F) {
	fuzzParser(f, ParseGemfileLock, "bundle/Gemfile.lock")
}

func FuzzParseGemspec(f *testing.F) {
	fuzzParser(f, ParseGemspec, "gems/usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec")
}

func fuzzParser(f *testing.F, parse inventory.ParseFunc, seeds ...string) {
	for _, s := range seeds {
		b, err := os.ReadFile(filepath.Join("testdata", s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parse(data, "/x", "fuzz")
		if err != nil && pkgs != nil {
			t.Fatal("packages returned with an error")
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}

type fileInfo struct{ mode fs.FileMode }

func (f fileInfo) Name() string       { return "x" }
func (f fileInfo) Size() int64        { return 100 }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }
