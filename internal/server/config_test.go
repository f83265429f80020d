package server

import (
	"os"
	"path/filepath"
	"reflect"
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
  body_idle_timeout: 30s
  max_connections: 500
registry:
  cache_size: 1048576
  max_upload_sessions_per_account: 10
gc:
  interval: 6h
  grace: 30m
  untagged: true
`)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BERTH_ADDR": "127.0.0.1:7000", "BERTH_GC_GRACE": "2h", "BERTH_REGISTRY_REQUIRE_LAYERS": "true",
		"BERTH_LIMITS_MAX_UPLOADS_PER_ACCOUNT": "4"}
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
	want := DefaultConfig()
	want.Addr, want.Data, want.ShutdownTimeout = "127.0.0.1:7000", "/srv/berth", time.Minute
	want.Limits.MaxManifestSize, want.Limits.BodyIdleTimeout, want.Limits.MaxConnections = 8<<20, 30*time.Second, 500
	want.Limits.MaxUploadsPerAccount = 4
	want.Registry.RequireLayers, want.Registry.CacheSize, want.Registry.MaxUploadSessionsPerAccount = true, 1<<20, 10
	want.GC = GC{Interval: 12 * time.Hour, Grace: 2 * time.Hour, Untagged: true}
	if !reflect.DeepEqual(c, want) {
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
		func(c *Config) { c.Limits.BodyIdleTimeout = -time.Second },
		func(c *Config) { c.Limits.MaxConnections = -1 },
		func(c *Config) { c.Registry.MaxUploadSessionsPerAccount = -1 },
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
	if !reflect.DeepEqual(c, DefaultConfig()) {
		t.Errorf("round-tripping the defaults changed them: %+v", c)
	}
	if got := (Setting{Key: "limits.max_manifest_size"}).Env(); got != "BERTH_LIMITS_MAX_MANIFEST_SIZE" {
		t.Errorf("Env() = %s", got)
	}
}

func TestAuthAndTLSConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.LoadFile(writeFile(t, `
addr: 0.0.0.0:443
auth:
  service: registry.example
  auto_create_projects: true
  trusted_proxies: [10.0.0.0/8, 192.0.2.1]
  max_login_failures: 3
tls:
  cert: /etc/berth/cert.pem
  key: /etc/berth/key.pem
audit:
  retention: 2160h
`)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BERTH_AUTH_TRUSTED_PROXIES": "10.0.0.0/8, 172.16.0.0/12", "BERTH_ADMIN_PASSWORD": "s3cret-pass"}
	if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Auth.Service != "registry.example" || !c.Auth.AutoCreateProjects || c.Auth.MaxLoginFailures != 3 ||
		!reflect.DeepEqual(c.Auth.TrustedProxies, []string{"10.0.0.0/8", "172.16.0.0/12"}) ||
		c.Auth.AdminPassword != "s3cret-pass" || c.Audit.Retention != 90*24*time.Hour || !c.TLSEnabled() {
		t.Errorf("config = %+v", c)
	}
	if err := c.LoadFile(writeFile(t, "auth:\n  admin_password: x\n")); err == nil {
		t.Error("the admin password was read from a file")
	}
	for _, s := range Settings() {
		if strings.Contains(s.Key, "password") {
			t.Errorf("setting %s would put a password on the command line", s.Key)
		}
	}
}

func TestListenValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   string // empty: valid
	}{
		{"loopback v4", func(c *Config) { c.Addr = "127.0.0.1:5000" }, ""},
		{"loopback v6", func(c *Config) { c.Addr = "[::1]:5000" }, ""},
		{"localhost", func(c *Config) { c.Addr = "localhost:5000" }, ""},
		{"all interfaces", func(c *Config) { c.Addr = ":5000" }, "refusing to serve plain HTTP on :5000"},
		{"public address", func(c *Config) { c.Addr = "192.0.2.1:5000" }, "refusing to serve plain HTTP"},
		{"allowed explicitly", func(c *Config) { c.Addr = "0.0.0.0:5000"; c.InsecureHTTP = true }, ""},
		{"HTTPS", func(c *Config) { c.Addr = "0.0.0.0:5000"; c.TLS.Cert, c.TLS.Key = "c", "k" }, ""},
		{"self-signed", func(c *Config) { c.Addr = "0.0.0.0:5000"; c.TLS.SelfSigned = true }, ""},
		{"cert without key", func(c *Config) { c.TLS.Cert = "c" }, "go together"},
		{"cert and self-signed", func(c *Config) { c.TLS.Cert, c.TLS.Key, c.TLS.SelfSigned = "c", "k", true }, "exclude"},
		{"bad proxy", func(c *Config) { c.Auth.TrustedProxies = []string{"10.0.0.0/99"} }, "trusted_proxies"},
		{"bad realm", func(c *Config) { c.Auth.Realm = "registry.example/token" }, "realm"},
		{"no token life", func(c *Config) { c.Auth.TokenTTL = 0 }, "token_ttl"},
		{"audit anchor URL", func(c *Config) { c.Audit.AnchorURL = "https://anchors.example/berth" }, ""},
		{"audit anchor URL not HTTP", func(c *Config) { c.Audit.AnchorURL = "file:///tmp/anchors" }, "anchor_url"},
	} {
		c := DefaultConfig()
		tc.adjust(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
