package rust

import (
	"bytes"
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
		{"cargo-v1", LockAnalyzer{}},
		{"cargo-v3", LockAnalyzer{}},
		{"cargo-v4", LockAnalyzer{}},
		{"auditable", AuditableAnalyzer{}},
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

func TestBadCargoLock(t *testing.T) {
	good, err := os.ReadFile("testdata/cargo-v3/Cargo.lock")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated": good[:bytes.Index(good, []byte(`name = "libc"`))+10],
		"garbled":   []byte("[[package]\nname = 1"),
		"noversion": []byte("version = 3\n[[package]]\nname = \"a\"\n"),
		"future":    []byte("version = 9\n"),
	} {
		t.Run(name, func(t *testing.T) {
			files := fstest.MapFS{"good/Cargo.lock": {Data: good}, "bad/Cargo.lock": {Data: data}}
			res, err := LockAnalyzer{}.Analyze(context.Background(), files)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warns) != 1 || !strings.HasPrefix(res.Warns[0], "/bad/Cargo.lock: ") {
				t.Errorf("warnings = %q", res.Warns)
			}
			if len(res.Sets) != 1 || res.Sets[0].Origin != "good/Cargo.lock" {
				t.Errorf("sets = %+v", res.Sets)
			}
		})
	}
}

func TestBadAuditData(t *testing.T) {
	for name, data := range map[string]string{
		"not JSON":           "{",
		"no name":            `{"packages":[{"version":"1.0.0","source":"crates.io"}]}`,
		"index out of range": `{"packages":[{"name":"a","version":"1","source":"local","dependencies":[7]}]}`,
	} {
		if _, err := ParseAuditData([]byte(data), "/b", "cargo-auditable"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		analyzer inventory.Analyzer
		path     string
		info     fileInfo
		want     bool
	}{
		{LockAnalyzer{}, "src/app/Cargo.lock", fileInfo{mode: 0o644}, true},
		{LockAnalyzer{}, "src/app/Cargo.toml", fileInfo{mode: 0o644}, false},
		{AuditableAnalyzer{}, "usr/local/bin/app", fileInfo{mode: 0o755, size: 1 << 20}, true},
		{AuditableAnalyzer{}, "usr/local/bin/app", fileInfo{mode: 0o644, size: 1 << 20}, false},
		{AuditableAnalyzer{}, "usr/local/bin/tiny", fileInfo{mode: 0o755, size: 100}, false},
		{AuditableAnalyzer{}, "usr/local/bin/link", fileInfo{mode: fs.ModeSymlink | 0o777, size: 1 << 20}, false},
	}
	for _, tt := range tests {
		if got := tt.analyzer.Required(tt.path, tt.info); got != tt.want {
			t.Errorf("%s.Required(%q, %v) = %v, want %v", tt.analyzer.Name(), tt.path, tt.info.mode, got, tt.want)
		}
	}
}

func FuzzParseCargoLock(f *testing.F) {
	for _, s := range []string{"cargo-v1", "cargo-v3", "cargo-v4"} {
		b, err := os.ReadFile(filepath.Join("testdata", s, "Cargo.lock"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParseCargoLock(data, "/x", "fuzz")
		if err != nil && pkgs != nil {
			t.Fatal("packages returned with an error")
		}
	})
}

func FuzzAuditable(f *testing.F) {
	for _, s := range []string{"demo", "corrupt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "auditable", s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := (AuditableAnalyzer{}).Analyze(context.Background(), fstest.MapFS{"bin/x": {Data: data, Mode: 0o755}}); err != nil {
			t.Fatal(err)
		}
	})
}

type fileInfo struct {
	mode fs.FileMode
	size int64
}

func (f fileInfo) Name() string       { return "x" }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() fs.FileMode  { return f.mode }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }
