package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/audit"
	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/backend"
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
	Auth            Auth          `yaml:"auth"`
	TLS             TLS           `yaml:"tls"`
	// InsecureHTTP allows plain HTTP on an address other than loopback.
	InsecureHTTP bool  `yaml:"insecure_http"`
	Audit        Audit `yaml:"audit"`
	Scan         Scan  `yaml:"scan"`
	Jobs         Jobs  `yaml:"jobs"`
	// TrustDir holds each project's trusted signing keys as <project>.yaml
	// (the trust file `berth verify --trust` reads); artifact pages and
	// the API verify signatures against them.
	TrustDir string `yaml:"trust_dir"`
	Keys     Keys   `yaml:"keys"`
	// Admission mounts the Kubernetes admission webhook under /admission/.
	Admission Admission     `yaml:"admission"`
	Storage   StorageConfig `yaml:"storage"`
	Webhooks  Webhooks      `yaml:"webhooks"`
}

// Webhooks configures the delivery of project webhooks.
type Webhooks struct {
	// AllowPrivate lets project webhooks reach loopback, private and
	// link-local addresses. Off by default: a project administrator must
	// not be able to make the server call its own network (SSRF).
	AllowPrivate bool `yaml:"allow_private"`
}

// Admission configures the admission webhook berth serve mounts at
// /admission/validate and /admission/mutate (docs/policy.md).
type Admission struct {
	// Policy is the policy file or directory; empty: no webhook unless
	// ProjectPolicies.
	Policy string `yaml:"policy"`
	// ProjectPolicies mounts the webhook without a policy file: it then
	// enforces only the projects' stored policies on this registry's
	// images (which it enforces with a policy file too).
	ProjectPolicies bool `yaml:"project_policies"`
	// PodSecurity adds the pod security rule set.
	PodSecurity bool `yaml:"pod_security"`
	// RegistryHosts are the names clients use for this registry: images
	// under them are read from its own stores (with their stored reports)
	// rather than over HTTP.
	RegistryHosts []string `yaml:"registry_hosts"`
}

// Keys configures the custody of projects' signing keys (internal/custody).
type Keys struct {
	// MasterKey seals the stored private keys: file:PATH, env:VARIABLE or
	// a pkcs11: URI. Empty: the server holds no keys and signs nothing.
	MasterKey string `yaml:"master_key"`
}

// StorageConfig chooses the backends (internal/backend): the embedded SQLite
// database and blob files in the data directory, or PostgreSQL and an S3
// bucket that any number of replicas share.
type StorageConfig struct {
	// Meta is "sqlite" or a postgres:// URL (its password is better given
	// through BERTH_STORAGE_META or the file than a flag, which other
	// users may see).
	Meta string `yaml:"meta"`
	// Blobs is "file" or s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION.
	Blobs string `yaml:"blobs"`
	// Redirect answers blob GETs with a redirect to a presigned URL of
	// the bucket (clients must reach it), so content does not pass
	// through berth.
	Redirect bool `yaml:"redirect"`
	// S3AccessKey and S3SecretKey are the bucket's credentials, from the
	// file only; without them the AWS_* environment variables are used.
	S3AccessKey string `yaml:"s3_access_key"`
	S3SecretKey string `yaml:"s3_secret_key"`
}

// Scan configures the server's scanning (internal/scanservice).
type Scan struct {
	// DBSources are where the server's vulnerability database comes from,
	// as `berth db update --source` takes them. With none, the server
	// scans only if its data directory already holds a database
	// (imported with `berth db import --db-dir <data>/vulndb`).
	DBSources []string `yaml:"db_sources"`
	// DBUpdateInterval is how often the database is updated (and at
	// start); 0 updates only on request.
	DBUpdateInterval time.Duration `yaml:"db_update_interval"`
	// OnPush scans every pushed image (projects may turn it off).
	OnPush bool `yaml:"on_push"`
	// SBOMReferrers attaches each scanned image's SBOM (CycloneDX) as an
	// OCI 1.1 referrer.
	SBOMReferrers bool `yaml:"sbom_referrers"`
	// Workers bounds the scans and re-matches running at once.
	Workers int `yaml:"workers"`
	// Scanners are what each scan looks for, with berth scan's names:
	// vuln (always), secret, misconfig.
	Scanners []string `yaml:"scanners"`
}

// Jobs tunes the background job queue.
type Jobs struct {
	// RetryBase is the first retry's delay; each further one doubles.
	RetryBase time.Duration `yaml:"retry_base"`
	// RetryMax caps the delay between retries.
	RetryMax time.Duration `yaml:"retry_max"`
}

// Auth configures authentication and authorization (internal/auth).
type Auth struct {
	// Disabled serves everyone everything: for local experiments only.
	Disabled bool `yaml:"disabled"`
	// Service is the token service name clients echo back (the JWT
	// audience).
	Service string `yaml:"service"`
	// Realm is the token endpoint's external URL; empty derives it from
	// each request.
	Realm           string        `yaml:"realm"`
	TokenTTL        time.Duration `yaml:"token_ttl"`
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	// AutoCreateProjects lets every user create a project by pushing to
	// it (otherwise only system administrators do).
	AutoCreateProjects bool `yaml:"auto_create_projects"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For, -Proto and
	// -Host headers berth believes.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Failed logins allowed per account and per address within
	// LoginFailureWindow.
	MaxLoginFailures           int           `yaml:"max_login_failures"`
	MaxLoginFailuresPerAddress int           `yaml:"max_login_failures_per_address"`
	LoginFailureWindow         time.Duration `yaml:"login_failure_window"`
	// LoginLockout is an account's first lockout, doubled for each one in
	// a row up to 64 times; MaxLoginFailuresGlobal, failures within the
	// window in all before logins that need a password check get 429.
	LoginLockout           time.Duration `yaml:"login_lockout"`
	MaxLoginFailuresGlobal int           `yaml:"max_login_failures_global"`
	// SigningKey is the ES256 key (PEM) that signs tokens and audit
	// checkpoints; empty keeps a generated one in the data directory.
	// Replicas sharing a database must share it: each one verifies the
	// tokens the others issue.
	SigningKey string `yaml:"signing_key"`
	// AdminPassword is the first administrator's password on first
	// start; only BERTH_ADMIN_PASSWORD sets it (never a file or a flag,
	// which other users may read).
	AdminPassword string `yaml:"-"`
}

// TLS configures HTTPS.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// SelfSigned generates a certificate for the listen address into the
	// data directory (tls/cert.pem), for development.
	SelfSigned bool `yaml:"self_signed"`
}

// Audit configures the audit log.
type Audit struct {
	// Retention prunes entries older than this (keeping a signed
	// checkpoint); 0 keeps everything.
	Retention time.Duration `yaml:"retention"`
	// AnchorURL, if set, receives every signed tip written to the anchor
	// file (a JSON POST, best effort, retried): a copy of the tip beyond
	// the data directory's reach.
	AnchorURL string `yaml:"anchor_url"`
}

// Limits bounds what clients may send and hold, so that a few slow or
// greedy clients cannot make the server unreachable for others.
type Limits struct {
	MaxManifestSize ByteSize `yaml:"max_manifest_size"`
	// BodyIdleTimeout fails a request whose body sends nothing for this
	// long (its connection is closed); 0 turns it off.
	BodyIdleTimeout time.Duration `yaml:"body_idle_timeout"`
	// MaxConnections bounds open client connections; past it new ones
	// wait to be accepted. 0 derives it from the open-file limit, leaving
	// descriptors for blob and database files.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP bounds one client address's share (connections
	// past it are closed at once); addresses in auth.trusted_proxies are
	// exempt. 0 means a quarter of the connection limit.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// MaxUploads bounds requests sending blob content at once (429 past
	// it). 0 means half the connection limit, so uploads never take every
	// connection.
	MaxUploads int `yaml:"max_uploads"`
	// MaxUploadsPerAccount bounds one account's share of them; 0 does not
	// limit.
	MaxUploadsPerAccount int `yaml:"max_uploads_per_account"`
}

// Registry tunes the distribution API.
type Registry struct {
	// RequireLayers refuses manifests whose distributable layers are not
	// in the repository (by default only the config blob is required, so
	// sparse images can be mirrored).
	RequireLayers bool `yaml:"require_layers"`
	// CacheSize bounds the in-memory manifest cache; 0 disables it.
	CacheSize ByteSize `yaml:"cache_size"`
	// UploadTTL is how long an upload session may sit idle before it is
	// removed (on a timer of its own, and by garbage collection).
	UploadTTL time.Duration `yaml:"upload_ttl"`
	// MaxUploadSessionsPerAccount and MaxUploadSessionsPerRepository
	// bound unfinished upload sessions (429 past them); 0 does not limit.
	MaxUploadSessionsPerAccount    int `yaml:"max_upload_sessions_per_account"`
	MaxUploadSessionsPerRepository int `yaml:"max_upload_sessions_per_repository"`
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
		Limits:          Limits{MaxManifestSize: 4 << 20, BodyIdleTimeout: time.Minute, MaxUploadsPerAccount: 32},
		Registry:        Registry{CacheSize: 32 << 20, UploadTTL: 24 * time.Hour, MaxUploadSessionsPerAccount: 256, MaxUploadSessionsPerRepository: 1024},
		GC:              GC{Interval: 0, Grace: time.Hour},
		Scan:            Scan{DBUpdateInterval: 6 * time.Hour, OnPush: true, SBOMReferrers: true, Workers: 2, Scanners: []string{"vuln", "secret"}},
		Jobs:            Jobs{RetryBase: time.Second, RetryMax: time.Hour},
		Storage:         StorageConfig{Meta: backend.SQLite, Blobs: backend.File},
		Auth: Auth{Service: "berth", TokenTTL: 5 * time.Minute, RefreshTokenTTL: 30 * 24 * time.Hour,
			MaxLoginFailures: 10, MaxLoginFailuresPerAddress: 50, LoginFailureWindow: 5 * time.Minute,
			LoginLockout: time.Minute, MaxLoginFailuresGlobal: 1000},
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
	Kind string // "string", "duration", "bytes", "bool", "int" or "list"
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

func intSetting(key, flag, help string, field func(*Config) *int) Setting {
	return Setting{Key: key, Flag: flag, Kind: "int", Help: help,
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%q: want a whole number, 0 or more", v)
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(*field(c)) }}
}

// listSetting is a comma-separated list in the environment and on the
// command line, a YAML sequence in the file.
func listSetting(key, flag, help string, field func(*Config) *[]string) Setting {
	return Setting{Key: key, Flag: flag, Kind: "list", Help: help,
		set: func(c *Config, v string) error {
			var out []string
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					out = append(out, item)
				}
			}
			*field(c) = out
			return nil
		},
		get: func(c *Config) string { return strings.Join(*field(c), ",") }}
}

// optionalStringSetting may be set to empty (to clear a file's value).
func optionalStringSetting(key, flag, help string, field func(*Config) *string) Setting {
	return Setting{Key: key, Flag: flag, Kind: "string", Help: help,
		set: func(c *Config, v string) error { *field(c) = v; return nil },
		get: func(c *Config) string { return *field(c) }}
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
		durationSetting("limits.body_idle_timeout", "body-idle-timeout", "fail a request whose body sends nothing for this long (0: never)",
			func(c *Config) *time.Duration { return &c.Limits.BodyIdleTimeout }),
		intSetting("limits.max_connections", "max-connections", "open client connections at most (0: from the open-file limit)",
			func(c *Config) *int { return &c.Limits.MaxConnections }),
		intSetting("limits.max_connections_per_ip", "max-connections-per-ip", "connections from one address at most, trusted proxies exempt (0: a quarter of max-connections)",
			func(c *Config) *int { return &c.Limits.MaxConnectionsPerIP }),
		intSetting("limits.max_uploads", "max-uploads", "requests sending blob content at once, then 429 (0: half of max-connections)",
			func(c *Config) *int { return &c.Limits.MaxUploads }),
		intSetting("limits.max_uploads_per_account", "max-uploads-per-account", "requests one account may send blob content with at once, then 429 (0: no limit)",
			func(c *Config) *int { return &c.Limits.MaxUploadsPerAccount }),
		boolSetting("registry.require_layers", "require-layers", "refuse manifests whose layers are not in the repository",
			func(c *Config) *bool { return &c.Registry.RequireLayers }),
		bytesSetting("registry.cache_size", "cache-size", "memory for hot manifests and tags (0 disables)",
			func(c *Config) *ByteSize { return &c.Registry.CacheSize }),
		durationSetting("registry.upload_ttl", "upload-ttl", "how long an upload session may sit idle",
			func(c *Config) *time.Duration { return &c.Registry.UploadTTL }),
		intSetting("registry.max_upload_sessions_per_account", "max-upload-sessions-per-account", "unfinished upload sessions per account, then 429 (0: no limit)",
			func(c *Config) *int { return &c.Registry.MaxUploadSessionsPerAccount }),
		intSetting("registry.max_upload_sessions_per_repository", "max-upload-sessions-per-repository", "unfinished upload sessions per repository, then 429 (0: no limit)",
			func(c *Config) *int { return &c.Registry.MaxUploadSessionsPerRepository }),
		durationSetting("gc.interval", "gc-interval", "run garbage collection this often (0 disables)",
			func(c *Config) *time.Duration { return &c.GC.Interval }),
		durationSetting("gc.grace", "gc-grace", "garbage collection spares content younger than this",
			func(c *Config) *time.Duration { return &c.GC.Grace }),
		boolSetting("gc.untagged", "gc-untagged", "garbage collection also deletes untagged manifests",
			func(c *Config) *bool { return &c.GC.Untagged }),
		boolSetting("auth.disabled", "no-auth", "turn authentication off: anyone may push, pull and delete (local experiments only)",
			func(c *Config) *bool { return &c.Auth.Disabled }),
		stringSetting("auth.service", "auth-service", "token service name (the JWT audience)",
			func(c *Config) *string { return &c.Auth.Service }),
		optionalStringSetting("auth.realm", "auth-realm", "external URL of the token endpoint (default: from each request)",
			func(c *Config) *string { return &c.Auth.Realm }),
		durationSetting("auth.token_ttl", "token-ttl", "life of a registry access token",
			func(c *Config) *time.Duration { return &c.Auth.TokenTTL }),
		durationSetting("auth.refresh_token_ttl", "refresh-token-ttl", "life of a refresh (identity) token",
			func(c *Config) *time.Duration { return &c.Auth.RefreshTokenTTL }),
		boolSetting("auth.auto_create_projects", "auto-create-projects", "let every user create a project by pushing to it",
			func(c *Config) *bool { return &c.Auth.AutoCreateProjects }),
		listSetting("auth.trusted_proxies", "trusted-proxies", "CIDRs whose X-Forwarded-For/-Proto/-Host berth believes (comma-separated)",
			func(c *Config) *[]string { return &c.Auth.TrustedProxies }),
		intSetting("auth.max_login_failures", "max-login-failures", "failed logins per account within the window before 429 (0: no limit)",
			func(c *Config) *int { return &c.Auth.MaxLoginFailures }),
		intSetting("auth.max_login_failures_per_address", "max-login-failures-per-address", "failed logins per source address within the window before 429 (0: no limit)",
			func(c *Config) *int { return &c.Auth.MaxLoginFailuresPerAddress }),
		durationSetting("auth.login_failure_window", "login-failure-window", "window over which failed logins are counted (0 turns throttling off)",
			func(c *Config) *time.Duration { return &c.Auth.LoginFailureWindow }),
		durationSetting("auth.login_lockout", "login-lockout", "an account's first lockout, doubled for each in a row up to 64 times",
			func(c *Config) *time.Duration { return &c.Auth.LoginLockout }),
		intSetting("auth.max_login_failures_global", "max-login-failures-global", "failed logins within the window in all before logins that need a password check get 429 (0: no limit)",
			func(c *Config) *int { return &c.Auth.MaxLoginFailuresGlobal }),
		optionalStringSetting("admission.policy", "admission-policy", "serve the Kubernetes admission webhook at /admission/validate and /admission/mutate with this policy file or directory",
			func(c *Config) *string { return &c.Admission.Policy }),
		boolSetting("admission.project_policies", "admission-project-policies", "serve the admission webhook even without --admission-policy, enforcing the projects' policies on this registry's images",
			func(c *Config) *bool { return &c.Admission.ProjectPolicies }),
		boolSetting("admission.pod_security", "admission-pod-security", "the admission webhook also enforces the pod security rule set",
			func(c *Config) *bool { return &c.Admission.PodSecurity }),
		boolSetting("webhooks.allow_private", "webhooks-allow-private", "let project webhooks reach loopback, private and link-local addresses (off: a project admin cannot make berth call its own network)",
			func(c *Config) *bool { return &c.Webhooks.AllowPrivate }),
		listSetting("admission.registry_hosts", "admission-registry-hosts", "names clients use for this registry; the webhook reads their images from its own stores (comma-separated)",
			func(c *Config) *[]string { return &c.Admission.RegistryHosts }),
		optionalStringSetting("tls.cert", "tls-cert", "TLS certificate (PEM) to serve HTTPS with",
			func(c *Config) *string { return &c.TLS.Cert }),
		optionalStringSetting("tls.key", "tls-key", "TLS private key (PEM) of --tls-cert",
			func(c *Config) *string { return &c.TLS.Key }),
		boolSetting("tls.self_signed", "tls-self-signed", "serve HTTPS with a self-signed certificate written to <data>/tls/ (development)",
			func(c *Config) *bool { return &c.TLS.SelfSigned }),
		boolSetting("insecure_http", "insecure-http", "allow plain HTTP on an address other than loopback",
			func(c *Config) *bool { return &c.InsecureHTTP }),
		durationSetting("audit.retention", "audit-retention", "prune audit entries older than this, keeping a signed checkpoint (0 keeps all)",
			func(c *Config) *time.Duration { return &c.Audit.Retention }),
		repeatedSetting("scan.db_sources", "db-source", "vulnerability database source, as 'berth db update --source' takes it (repeatable; whitespace-separated in the environment)",
			func(c *Config) *[]string { return &c.Scan.DBSources }),
		durationSetting("scan.db_update_interval", "db-update-interval", "update the vulnerability database this often, and at start (0: only on request)",
			func(c *Config) *time.Duration { return &c.Scan.DBUpdateInterval }),
		boolSetting("scan.on_push", "scan-on-push", "scan every pushed image when the server has a vulnerability database",
			func(c *Config) *bool { return &c.Scan.OnPush }),
		boolSetting("scan.sbom_referrers", "sbom-referrers", "attach each scanned image's CycloneDX SBOM as an OCI referrer",
			func(c *Config) *bool { return &c.Scan.SBOMReferrers }),
		intSetting("scan.workers", "scan-workers", "scans and re-matches running at once",
			func(c *Config) *int { return &c.Scan.Workers }),
		listSetting("scan.scanners", "scanners", "what server scans look for: vuln (always), secret, misconfig (comma-separated)",
			func(c *Config) *[]string { return &c.Scan.Scanners }),
		durationSetting("jobs.retry_base", "job-retry-base", "first retry delay of a failed background job (doubling after)",
			func(c *Config) *time.Duration { return &c.Jobs.RetryBase }),
		durationSetting("jobs.retry_max", "job-retry-max", "longest delay between retries of a background job",
			func(c *Config) *time.Duration { return &c.Jobs.RetryMax }),
		stringSetting("storage.meta", "storage-meta", "metadata backend: sqlite (in the data directory) or postgres://USER:PASS@HOST:PORT/DB?sslmode=... (shared by replicas)",
			func(c *Config) *string { return &c.Storage.Meta }),
		stringSetting("storage.blobs", "storage-blobs", "blob backend: file (in the data directory) or s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION (credentials from AWS_* or the file)",
			func(c *Config) *string { return &c.Storage.Blobs }),
		boolSetting("storage.redirect", "storage-redirect", "answer blob downloads with a redirect to a presigned S3 URL (clients must reach the bucket)",
			func(c *Config) *bool { return &c.Storage.Redirect }),
		optionalStringSetting("auth.signing_key", "signing-key", "ES256 key (PEM) signing tokens and audit checkpoints (default: generated in <data>/auth/; replicas sharing a database must share one)",
			func(c *Config) *string { return &c.Auth.SigningKey }),
		optionalStringSetting("trust_dir", "trust-dir", "directory of trust files, <project>.yaml each, that artifact pages and the API verify signatures with",
			func(c *Config) *string { return &c.TrustDir }),
		optionalStringSetting("keys.master_key", "master-key", "master key sealing the projects' signing keys: file:PATH, env:VARIABLE or a pkcs11: URI (empty: no key custody, no scan-stage signing)",
			func(c *Config) *string { return &c.Keys.MasterKey }),
		optionalStringSetting("audit.anchor_url", "audit-anchor-url", "POST the audit log's signed tip here (JSON, best effort) as well as to <data>/"+audit.AnchorFileName,
			func(c *Config) *string { return &c.Audit.AnchorURL }),
	}
}

// repeatedSetting is a flag given once per value, a YAML sequence, and a
// whitespace-separated list in the environment (values such as database
// sources may hold commas: "osv:URL#npm,PyPI").
func repeatedSetting(key, flag, help string, field func(*Config) *[]string) Setting {
	return Setting{Key: key, Flag: flag, Kind: "repeated", Help: help,
		set: func(c *Config, v string) error {
			*field(c) = nil
			if vs := strings.Fields(v); len(vs) > 0 {
				*field(c) = vs
			}
			return nil
		},
		get: func(c *Config) string { return strings.Join(*field(c), " ") }}
}

// AdminPasswordEnv sets the first administrator's password on first start.
const AdminPasswordEnv = "BERTH_ADMIN_PASSWORD"

// ApplyEnv sets c from BERTH_* variables found by lookup (os.LookupEnv).
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	for _, s := range Settings() {
		if v, ok := lookup(s.Env()); ok && v != "" {
			if err := s.Set(c, v); err != nil {
				return fmt.Errorf("%s: %w", s.Env(), err)
			}
		}
	}
	if v, ok := lookup(AdminPasswordEnv); ok && v != "" {
		c.Auth.AdminPassword = v
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
	if c.Scan.Workers <= 0 {
		errs = append(errs, errors.New("scan.workers must be at least 1"))
	}
	if !slices.Contains(c.Scan.Scanners, "vuln") {
		errs = append(errs, errors.New("scan.scanners must include vuln (the server's scans match vulnerabilities; add secret or misconfig)"))
	}
	for _, sc := range c.Scan.Scanners {
		if sc != "vuln" && sc != "secret" && sc != "misconfig" {
			errs = append(errs, fmt.Errorf("scan.scanners: unknown scanner %q (want vuln, secret, misconfig)", sc))
		}
	}
	if c.Jobs.RetryBase <= 0 || c.Jobs.RetryMax < c.Jobs.RetryBase {
		errs = append(errs, errors.New("jobs.retry_base must be positive and jobs.retry_max at least as long"))
	}
	// The file may say what a flag or variable cannot.
	if c.Limits.BodyIdleTimeout < 0 {
		errs = append(errs, errors.New("limits.body_idle_timeout must not be negative"))
	}
	for key, n := range map[string]int{
		"limits.max_connections": c.Limits.MaxConnections, "limits.max_connections_per_ip": c.Limits.MaxConnectionsPerIP,
		"limits.max_uploads": c.Limits.MaxUploads, "limits.max_uploads_per_account": c.Limits.MaxUploadsPerAccount,
		"registry.max_upload_sessions_per_account":    c.Registry.MaxUploadSessionsPerAccount,
		"registry.max_upload_sessions_per_repository": c.Registry.MaxUploadSessionsPerRepository,
	} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", key))
		}
	}
	if c.GC.Interval > 0 && c.GC.Interval < time.Minute {
		errs = append(errs, errors.New("gc.interval must be 0 (off) or at least 1m"))
	}
	if !c.Auth.Disabled {
		if c.Auth.TokenTTL <= 0 || c.Auth.RefreshTokenTTL <= 0 {
			errs = append(errs, errors.New("auth.token_ttl and auth.refresh_token_ttl must be positive"))
		}
		if _, err := auth.ParseCIDRs(c.Auth.TrustedProxies); err != nil {
			errs = append(errs, fmt.Errorf("auth.trusted_proxies: %w", err))
		}
		if c.Auth.Realm != "" && !strings.HasPrefix(c.Auth.Realm, "https://") && !strings.HasPrefix(c.Auth.Realm, "http://") {
			errs = append(errs, errors.New("auth.realm must be an http:// or https:// URL"))
		}
		if c.Auth.LoginFailureWindow > 0 && c.Auth.MaxLoginFailures > 0 && c.Auth.LoginLockout <= 0 {
			errs = append(errs, errors.New("auth.login_lockout must be positive while auth.max_login_failures limits accounts"))
		}
	}
	if c.Audit.AnchorURL != "" {
		if u, err := url.Parse(c.Audit.AnchorURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("audit.anchor_url must be an http:// or https:// URL"))
		}
	}
	if err := c.Backends().Check(); err != nil {
		errs = append(errs, err)
	}
	if c.Storage.Redirect && !c.Backends().SharedBlobs() {
		errs = append(errs, errors.New("storage.redirect needs blobs in S3 (storage.blobs s3://...): files are served by berth"))
	}
	if c.Backends().SharedMeta() && c.Auth.SigningKey == "" {
		errs = append(errs, errors.New("storage.meta on PostgreSQL needs auth.signing_key: every replica must sign and verify "+
			"tokens and audit checkpoints with the same key (an ECDSA P-256 PEM given to each replica)"))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("tls.cert and tls.key go together"))
	}
	if c.TLS.SelfSigned && c.TLS.Cert != "" {
		errs = append(errs, errors.New("tls.self_signed and tls.cert exclude each other"))
	}
	if !c.TLSEnabled() && !c.InsecureHTTP && !loopback(c.Addr) {
		errs = append(errs, fmt.Errorf("refusing to serve plain HTTP on %s, which is not a loopback address: "+
			"credentials and tokens would cross the network in clear; serve HTTPS (--tls-cert and --tls-key, or "+
			"--tls-self-signed for development) or allow it explicitly with --insecure-http (behind a TLS-terminating proxy)", c.Addr))
	}
	return errors.Join(errs...)
}

// Backends is the backend configuration the storage settings name.
func (c *Config) Backends() backend.Config {
	return backend.Config{Dir: c.Data, Meta: c.Storage.Meta, Blobs: c.Storage.Blobs,
		S3AccessKey: c.Storage.S3AccessKey, S3SecretKey: c.Storage.S3SecretKey}
}

// TLSEnabled reports whether the server speaks HTTPS.
func (c *Config) TLSEnabled() bool { return c.TLS.Cert != "" || c.TLS.SelfSigned }

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
