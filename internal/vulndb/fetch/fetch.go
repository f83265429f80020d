// Package fetch downloads upstream vulnerability files into a local cache with
// conditional requests (ETag / If-Modified-Since), so an unchanged feed costs a
// 304 and the previous download is reused. Every request carries a deadline
// that is re-armed while bytes keep arriving: a source that stops answering
// fails the update after the configured timeout, however large the file.
package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/vulndb/source"
)

// DefaultTimeout bounds the wait for a response and for each chunk of a body.
const DefaultTimeout = 60 * time.Second

// Client is a source.Fetcher backed by a cache directory.
type Client struct {
	http      *http.Client
	cacheDir  string
	timeout   time.Duration
	userAgent string
	log       *slog.Logger
	progress  func(url string, size int64) func(n int64)

	mu      sync.Mutex
	changed bool
	used    map[string]bool // cache files this client fetched or reused
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, proxies, TLS).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTimeout sets how long a request may wait for its response headers and
// for each further chunk of the body; zero or less keeps DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithProgress has every download announced as it starts, with its size
// (-1 when the server does not say); the function returned, if not nil,
// hears of each chunk of the body as it arrives (for a progress bar).
func WithProgress(fn func(url string, size int64) func(n int64)) Option {
	return func(c *Client) { c.progress = fn }
}

// New returns a Client that keeps downloads in cacheDir.
func New(cacheDir string, opts ...Option) *Client {
	c := &Client{
		http:      http.DefaultClient,
		cacheDir:  cacheDir,
		timeout:   DefaultTimeout,
		userAgent: "berth",
		log:       slog.Default(),
		used:      map[string]bool{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Changed reports whether any file fetched so far differed from the cached
// copy (a 200 rather than a 304, or a local file).
func (c *Client) Changed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Client) markChanged() {
	c.mu.Lock()
	c.changed = true
	c.mu.Unlock()
}

// Fetch implements source.Fetcher.
func (c *Client) Fetch(ctx context.Context, loc string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !source.IsRemote(loc) {
		p := source.LocalPath(loc)
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("%s: %w", p, source.ErrNotFound)
			}
			return "", err
		}
		c.markChanged()
		return p, nil
	}
	return c.fetchHTTP(ctx, loc)
}

// Prune deletes the cached files this client did not use, so feeds that
// were dropped or renamed upstream do not pile up. Call it only after an
// update that succeeded: a failed one may not have reached every file.
func (c *Client) Prune() error {
	entries, err := os.ReadDir(c.cacheDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("download cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range entries {
		if !c.used[e.Name()] {
			if err := os.Remove(filepath.Join(c.cacheDir, e.Name())); err != nil {
				return fmt.Errorf("download cache: %w", err)
			}
		}
	}
	return nil
}

// cacheEntry is kept beside each cached file: the validators for the next
// conditional request and what the file must look like to be reused.
type cacheEntry struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
}

func (c *Client) paths(loc string) (data, meta string) {
	sum := sha256.Sum256([]byte(loc))
	base := hex.EncodeToString(sum[:12])
	return filepath.Join(c.cacheDir, base), filepath.Join(c.cacheDir, base+".json")
}

func (c *Client) fetchHTTP(ctx context.Context, loc string) (string, error) {
	if err := os.MkdirAll(c.cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("download cache: %w", err)
	}
	dataPath, metaPath := c.paths(loc)
	c.mu.Lock()
	c.used[filepath.Base(dataPath)] = true
	c.used[filepath.Base(metaPath)] = true
	c.mu.Unlock()
	prev := readEntry(metaPath, dataPath)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errStalled := fmt.Errorf("GET %s: no data for %s: timed out", loc, c.timeout)
	watchdog := time.AfterFunc(c.timeout, func() { cancel(errStalled) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", loc, err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if prev != nil {
		if prev.ETag != "" {
			req.Header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			req.Header.Set("If-Modified-Since", prev.LastModified)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errStalled) {
			return "", errStalled
		}
		return "", fmt.Errorf("GET %s: %w", loc, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified && prev != nil:
		c.log.Debug("not modified", "url", loc)
		return dataPath, nil
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("GET %s: %w", loc, source.ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("GET %s: server answered %s%s", loc, resp.Status, brief(msg))
	}

	want, err := publishedSHA256(resp.Header)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", loc, err)
	}
	tmp, err := os.CreateTemp(c.cacheDir, ".part-*")
	if err != nil {
		return "", fmt.Errorf("download cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	h := sha256.New()
	body := &rearmReader{r: resp.Body, watchdog: watchdog, timeout: c.timeout}
	if c.progress != nil {
		body.progress = c.progress(loc, resp.ContentLength)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errStalled) {
			return "", errStalled
		}
		return "", fmt.Errorf("GET %s: reading body: %w", loc, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", fmt.Errorf("GET %s: truncated: got %d of %d bytes", loc, n, resp.ContentLength)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && want != got {
		return "", fmt.Errorf("GET %s: sha256 mismatch: published %s, downloaded %s", loc, want, got)
	}
	// The data file goes in before its validators: a crash in between leaves
	// old validators with new data, which costs one extra download, never a
	// stale file taken for fresh.
	if err := os.Rename(tmp.Name(), dataPath); err != nil {
		return "", fmt.Errorf("download cache: %w", err)
	}
	e := cacheEntry{URL: loc, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Size: n, SHA256: got}
	if err := writeEntry(metaPath, e); err != nil {
		return "", err
	}
	c.markChanged()
	c.log.Debug("downloaded", "url", loc, "bytes", n)
	return dataPath, nil
}

// readEntry returns the cache entry for a URL when the cached file is still
// the one the entry describes.
func readEntry(metaPath, dataPath string) *cacheEntry {
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return nil
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || (e.ETag == "" && e.LastModified == "") {
		return nil
	}
	fi, err := os.Stat(dataPath)
	if err != nil || fi.Size() != e.Size {
		return nil
	}
	return &e
}

func writeEntry(path string, e cacheEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("download cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("download cache: %w", err)
	}
	return nil
}

// publishedSHA256 reads a sha-256 digest the server publishes for the body:
// Repr-Digest (RFC 9530) or the older Digest (RFC 3230). Other algorithms are
// ignored; a sha-256 entry that does not decode is an error.
func publishedSHA256(h http.Header) (string, error) {
	for _, name := range []string{"Repr-Digest", "Digest"} {
		for _, v := range h.Values(name) {
			for _, part := range strings.Split(v, ",") {
				alg, val, ok := strings.Cut(strings.TrimSpace(part), "=")
				if !ok || !strings.EqualFold(alg, "sha-256") {
					continue
				}
				val = strings.Trim(val, ":")
				raw, err := base64.StdEncoding.DecodeString(val)
				if err != nil || len(raw) != sha256.Size {
					return "", fmt.Errorf("%s header: malformed sha-256 value %q", name, val)
				}
				return hex.EncodeToString(raw), nil
			}
		}
	}
	return "", nil
}

func brief(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return ": " + strconv.Quote(string(b))
}

// rearmReader pushes the request's watchdog back each time data arrives.
// It also tells the progress callback, if any, of what arrived.
type rearmReader struct {
	r        io.Reader
	watchdog *time.Timer
	timeout  time.Duration
	progress func(n int64)
}

func (r *rearmReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.watchdog.Reset(r.timeout)
		if r.progress != nil {
			r.progress(int64(n))
		}
	}
	return n, err
}
