package inventory

import (
	"errors"
	"fmt"

	"os"
	"path/filepath"
	"strings"
)

// GetExtra returns a small per-image result kept beside the layer entries
// (what the secret scanner found in an image config), keyed by a kind
// that carries its version ("secret-config-<rules version>") and a
// sha256 digest. A warm scan then reads the config's results instead of
// parsing every rule to scan a few lines again.
func (c *Cache) GetExtra(kind, digest string) ([]byte, bool) {
	p, ok := c.extraFile(kind, digest)
	if !ok {
		return nil, false
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	return data, true
}

// PutExtra stores what GetExtra returns, atomically.
func (c *Cache) PutExtra(kind, digest string, data []byte) error {
	p, ok := c.extraFile(kind, digest)
	if !ok {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

func (c *Cache) extraFile(kind, digest string) (string, bool) {
	if c == nil || kind == "" || strings.ContainsAny(kind, "./\\") {
		return "", false
	}
	alg, hexPart, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(hexPart) != 64 || strings.ContainsAny(hexPart, "./\\") {
		return "", false
	}
	return filepath.Join(c.dir, "extra", kind, hexPart+".json"), true
}
