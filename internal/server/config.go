package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"
)

// Config is everything `berth serve` can be told. It is read, in increasing
// precedence, from the defaults, a YAML file, BERTH_* environment variables
// and command-line flags; Settings lists every key with its environment
// variable and flag.
type Config struct {
	Addr string `yaml:"addr"`
	Data string `yaml:"data"`
	// ShutdownTimeout bounds how long a SIGTERM waits for in-flight
	// requests (uploads) to finish.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	Limits          Limits        `yaml:"limits"`
	Registry        Registry      `yaml:"registry"`
	GC              GC            `yaml:"gc"`
}

// Limits bounds what clients may send.
type Limits struct {
	MaxManifestSize ByteSize `yaml:"max_manifest_size"`
}

// Registry tunes the distribution API.
type Registry struct {
	// RequireLayers refuses manifests whose distributable layers are not
	// in the repository (by default only the config blob is required, so
	// sparse images can be mirrored).
	RequireLayers bool `yaml:"require_layers"`
	// CacheSize bounds the in-memory manifest cache; 0 disables it.
	CacheSize ByteSize `yaml:"cache_size"`
	// UploadTTL is how long an upload session may sit idle before garbage
	// collection removes it.
	UploadTTL time.Duration `yaml:"upload_ttl"`
}

// GC configures garbage collection inside the server.
type GC struct {
	// Interval between runs; 0 disables scheduled collection.
	Interval time.Duration `yaml:"interval"`
	// Grace protects content younger than this (pushes in flight).
	Grace time.Duration `yaml:"grace"`
	// Untagged also deletes manifests no tag reaches.
	Untagged bool `yaml:"untagged"`
}

// ByteSize is a size in bytes, written as a number or with a unit ("4MiB").
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

func (b ByteSize) String() string { return humanize.IBytes(uint64(b)) }

func parseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		return ByteSize(n), nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("size %q: want bytes or a number with a unit such as 4MiB", s)
	}
	return ByteSize(n), nil
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:5000",
		Data:            "./berth-data",
		ShutdownTimeout: time.Minute,
		Limits:          Limits{MaxManifestSize: 4 << 20},
		Registry:        Registry{CacheSize: 32 << 20, UploadTTL: 24 * time.Hour},
		GC:              GC{Interval: 0, Grace: time.Hour},
	}
}

// LoadFile merges a YAML file into c. Unknown keys are errors: a typo must
// not silently leave a default in place.
func (c *Config) LoadFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	// An empty file (io.EOF) sets nothing.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Setting is one configuration key: its YAML path, environment variable,
// flag, and how to set it from text.
type Setting struct {
	Key  string // YAML path, e.g. "gc.interval"
	Flag string // flag name for `berth serve`, e.g. "gc-interval"
	Kind string // "string", "duration", "bytes" or "bool"
	Help string
	set  func(c *Config, v string) error
	get  func(c *Config) string
}

// Env is the environment variable that sets s.
func (s Setting) Env() string {
	return "BERTH_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(s.Key))
}

// Set parses v into c.
func (s Setting) Set(c *Config, v string) error {
	if err := s.set(c, v); err != nil {
		return fmt.Errorf("%s: %w", s.Key, err)
	}
	return nil
}

// Get renders the current value in c.
func (s Setting) Get(c *Config) string { return s.get(c) }

func durationSetting(key, flag, help string, field func(*Config) *time.Duration) Setting {
	return Setting{Key: key, Flag: flag, Kind: "duration", Help: help,
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			if d < 0 {
				return fmt.Errorf("duration %q is negative", v)
			}
			*field(c) = d
			return nil
		},
		get: func(c *Config) string { return field(c).String() }}
}

func bytesSetting(key, flag, help string, field func(*Config) *ByteSize) Setting {
	return Setting{Key: key, Flag: flag, Kind: "bytes", Help: help,
		set: func(c *Config, v string) error {
			b, err := parseByteSize(v)
			if err != nil {
				return err
			}
			*field(c) = b
			return nil
		},
		get: func(c *Config) string { return field(c).String() }}
}

func boolSetting(key, flag, help string, field func(*Config) *bool) Setting {
	return Setting{Key: key, Flag: flag, Kind: "bool", Help: help,
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return err
			}
			*field(c) = b
			return nil
		},
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) }}
}

func stringSetting(key, flag, help string, field func(*Config) *string) Setting {
	return Setting{Key: key, Flag: flag, Kind: "string", Help: help,
		set: func(c *Config, v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			*field(c) = v
			return nil
		},
		get: func(c *Config) string { return *field(c) }}
}

// Settings lists every configuration key, the one table the YAML file,
// the environment and the flags all follow.
func Settings() []Setting {
	return []Setting{
		stringSetting("addr", "addr", "address to listen on", func(c *Config) *string { return &c.Addr }),
		stringSetting("data", "data", "data directory (blobs, metadata database, lock)", func(c *Config) *string { return &c.Data }),
		durationSetting("shutdown_timeout", "shutdown-timeout", "how long SIGTERM waits for in-flight requests",
			func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		bytesSetting("limits.max_manifest_size", "max-manifest-size", "largest manifest accepted",
			func(c *Config) *ByteSize { return &c.Limits.MaxManifestSize }),
		boolSetting("registry.require_layers", "require-layers", "refuse manifests whose layers are not in the repository",
			func(c *Config) *bool { return &c.Registry.RequireLayers }),
		bytesSetting("registry.cache_size", "cache-size", "memory for hot manifests and tags (0 disables)",
			func(c *Config) *ByteSize { return &c.Registry.CacheSize }),
		durationSetting("registry.upload_ttl", "upload-ttl", "how long an upload session may sit idle",
			func(c *Config) *time.Duration { return &c.Registry.UploadTTL }),
		durationSetting("gc.interval", "gc-interval", "run garbage collection this often (0 disables)",
			func(c *Config) *time.Duration { return &c.GC.Interval }),
		durationSetting("gc.grace", "gc-grace", "garbage collection spares content younger than this",
			func(c *Config) *time.Duration { return &c.GC.Grace }),
		boolSetting("gc.untagged", "gc-untagged", "garbage collection also deletes untagged manifests",
			func(c *Config) *bool { return &c.GC.Untagged }),
	}
}

// ApplyEnv sets c from BERTH_* variables found by lookup (os.LookupEnv).
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	for _, s := range Settings() {
		if v, ok := lookup(s.Env()); ok && v != "" {
			if err := s.Set(c, v); err != nil {
				return fmt.Errorf("%s: %w", s.Env(), err)
			}
		}
	}
	return nil
}

// Validate checks values that parse but make no sense.
func (c *Config) Validate() error {
	var errs []error
	if c.Limits.MaxManifestSize <= 0 {
		errs = append(errs, errors.New("limits.max_manifest_size must be positive"))
	}
	if c.Registry.UploadTTL <= 0 {
		errs = append(errs, errors.New("registry.upload_ttl must be positive"))
	}
	if c.GC.Interval > 0 && c.GC.Interval < time.Minute {
		errs = append(errs, errors.New("gc.interval must be 0 (off) or at least 1m"))
	}
	return errors.Join(errs...)
}
