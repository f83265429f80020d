package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	c := DefaultConfig()
	if err := c.LoadFile(writeFile(t, `
addr: 0.0.0.0:6000
data: /srv/berth
limits:
  max_manifest_size: 8MiB
registry:
  cache_size: 1048576
gc:
  interval: 6h
  grace: 30m
  untagged: true
`)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BERTH_ADDR": "127.0.0.1:7000", "BERTH_GC_GRACE": "2h", "BERTH_REGISTRY_REQUIRE_LAYERS": "true"}
	if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings() {
		if s.Flag == "gc-interval" {
			if err := s.Set(&c, "12h"); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := Config{
		Addr: "127.0.0.1:7000", Data: "/srv/berth", ShutdownTimeout: time.Minute,
		Limits:   Limits{MaxManifestSize: 8 << 20},
		Registry: Registry{RequireLayers: true, CacheSize: 1 << 20, UploadTTL: 24 * time.Hour},
		GC:       GC{Interval: 12 * time.Hour, Grace: 2 * time.Hour, Untagged: true},
	}
	if c != want {
		t.Errorf("config = %+v\nwant     %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "adress: x\n", "adress"},
		{"unknown nested key", "gc:\n  intervall: 1h\n", "intervall"},
		{"bad duration", "gc:\n  grace: soon\n", "soon"},
		{"bad size", "limits:\n  max_manifest_size: lots\n", "lots"},
		{"negative size", "limits:\n  max_manifest_size: -5\n", "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			err := c.LoadFile(writeFile(t, tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadFile: err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	c := DefaultConfig()
	if err := c.LoadFile(writeFile(t, "")); err != nil {
		t.Errorf("an empty file: %v", err)
	}
	if err := c.LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file loaded")
	}
	for _, env := range []map[string]string{
		{"BERTH_GC_INTERVAL": "often"},
		{"BERTH_GC_UNTAGGED": "maybe"},
		{"BERTH_LIMITS_MAX_MANIFEST_SIZE": "huge"},
		{"BERTH_GC_GRACE": "-1h"},
	} {
		c := DefaultConfig()
		if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil {
			t.Errorf("ApplyEnv(%v) succeeded", env)
		}
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.Limits.MaxManifestSize = 0 },
		func(c *Config) { c.GC.Interval = time.Second },
		func(c *Config) { c.Registry.UploadTTL = 0 },
	} {
		c := DefaultConfig()
		bad(&c)
		if c.Validate() == nil {
			t.Errorf("Validate accepted %+v", c)
		}
	}
}

func TestSettingsTable(t *testing.T) {
	seen := [3]map[string]bool{{}, {}, {}}
	c := DefaultConfig()
	for _, s := range Settings() {
		for i, name := range []string{s.Key, s.Flag, s.Env()} {
			if seen[i][name] {
				t.Errorf("%q appears twice", name)
			}
			seen[i][name] = true
		}
		// Every setting round-trips its default.
		if err := s.Set(&c, s.Get(&c)); err != nil {
			t.Errorf("%s: setting its own default %q: %v", s.Key, s.Get(&c), err)
		}
	}
	if c != DefaultConfig() {
		t.Errorf("round-tripping the defaults changed them: %+v", c)
	}
	if got := (Setting{Key: "limits.max_manifest_size"}).Env(); got != "BERTH_LIMITS_MAX_MANIFEST_SIZE" {
		t.Errorf("Env() = %s", got)
	}
}
