package php

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
		{"app", LockAnalyzer{}},
		{"app", InstalledAnalyzer{}},
		{"installed-v1", InstalledAnalyzer{}},
	}
	for _, tt := range tests {
		t.Run(tt.dir+"/"+tt.analyzer.Name(), func(t *testing.T) {
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

func TestBadInput(t *testing.T) {
	lock, err := os.ReadFile("testdata/app/composer.lock")
	if err != nil {
		t.Fatal(err)
	}
	installed, err := os.ReadFile("testdata/app/vendor/composer/installed.json")
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
		{LockAnalyzer{}, "a/composer.lock", lock, "b/composer.lock", lock[:len(lock)/2]},
		{LockAnalyzer{}, "a/composer.lock", lock, "b/composer.lock", []byte(`{"_readme": []}`)},
		{LockAnalyzer{}, "a/composer.lock", lock, "b/composer.lock", []byte(`{"packages": [{"name": "x/y"}]}`)},
		{InstalledAnalyzer{}, "a/vendor/composer/installed.json", installed, "b/vendor/composer/installed.json", installed[:len(installed)/3]},
		{InstalledAnalyzer{}, "a/vendor/composer/installed.json", installed, "b/vendor/composer/installed.json", []byte(`[{"name": 1}]`)},
		{InstalledAnalyzer{}, "a/vendor/composer/installed.json", installed, "b/vendor/composer/installed.json", []byte(`{"dev": true}`)},
	}
	for _, tt := range tests {
		files := fstest.MapFS{tt.good: {Data: tt.goodData}, tt.bad: {Data: tt.data}}
		res, err := tt.analyzer.Analyze(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/"+tt.bad+": ") {
			t.Errorf("%s: warnings = %q, want one naming /%s", tt.analyzer.Name(), res.Warns, tt.bad)
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
		{LockAnalyzer{}, "var/www/composer.lock", true},
		{LockAnalyzer{}, "composer.lock", true},
		{LockAnalyzer{}, "var/www/vendor/acme/lib/composer.lock", false},
		{InstalledAnalyzer{}, "var/www/vendor/composer/installed.json", true},
		{InstalledAnalyzer{}, "vendor/composer/installed.json", true},
		{InstalledAnalyzer{}, "var/www/vendor/composer/installed.php", false},
		{InstalledAnalyzer{}, "var/www/installed.json", false},
	}
	for _, tt := range tests {
		if got := tt.analyzer.Required(tt.path, fileInfo{mode: 0o644}); got != tt.want {
			t.Errorf("%s.Required(%q) = %v, want %v", tt.analyzer.Name(), tt.path, got, tt.want)
		}
	}
}

func FuzzParseLock(f *testing.F) {
	fuzzParser(f, ParseLock, "app/composer.lock")
}

func FuzzParseInstalled(f *testing.F) {
	fuzzParser(f, ParseInstalled, "app/vendor/composer/installed.json", "installed-v1/vendor/composer/installed.json")
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
