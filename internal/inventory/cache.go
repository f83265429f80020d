package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/image"
)

// Cache keeps what each analyzer found in each layer, keyed by the
// layer's diffID and the analyzer's name and version, so a layer shared by
// many images is read once, and bumping one analyzer's version re-runs
// only that analyzer. Entries are JSON files written atomically (temporary
// file, then rename); an entry that does not parse is ignored and
// rewritten on the next scan.
//
//	DIR/inventory-v1/sha256/<hex>/changes-v1.json   whiteouts of the layer
//	DIR/inventory-v1/sha256/<hex>/<analyzer>-v<N>.json
type Cache struct {
	dir string
}

// cacheFormat versions the layout above; walkerVersion versions the
// Changes the walker records.
const (
	cacheFormat   = "inventory-v1"
	walkerVersion = 1
)

// DefaultCacheDir is $BERTH_CACHE_DIR, else the user cache directory's
// berth folder (~/.cache/berth on Linux).
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("BERTH_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w (set --cache-dir or BERTH_CACHE_DIR)", err)
	}
	return filepath.Join(d, "berth"), nil
}

// OpenCache opens (creating it if need be) a cache in dir.
func OpenCache(dir string) (*Cache, error) {
	root := filepath.Join(dir, cacheFormat)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	return &Cache{dir: root}, nil
}

// analyzerEntry is one analyzer's outcome for one layer.
type analyzerEntry struct {
	// Inputs are the paths the analyzer required in the layer: a later
	// layer's rewrite of one of them replaces what it yielded.
	Inputs []string `json:"inputs,omitempty"`
	Result *Result  `json:"result"`
}

func (c *Cache) layerDir(diffID string) (string, bool) {
	alg, hexPart, ok := strings.Cut(diffID, ":")
	if !ok || alg != "sha256" || len(hexPart) != 64 || strings.ContainsAny(hexPart, "./\\") {
		return "", false
	}
	return filepath.Join(c.dir, alg, hexPart), true
}

func analyzerFile(name string, version int) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
	return fmt.Sprintf("%s-v%d.json", safe, version)
}

func changesFile() string { return fmt.Sprintf("changes-v%d.json", walkerVersion) }

// get reads one entry into v; false when absent or unreadable.
func (c *Cache) get(diffID, file string, v any) bool {
	if c == nil {
		return false
	}
	dir, ok := c.layerDir(diffID)
	if !ok {
		return false
	}
	p := filepath.Join(dir, file)
	data, err := os.ReadFile(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			slog.Warn("cache entry unreadable; it will be rewritten", "path", p, "err", err)
		}
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		slog.Warn("cache entry corrupt; it will be rewritten", "path", p, "err", err)
		return false
	}
	return true
}

func (c *Cache) getChanges(diffID string) (*image.Changes, bool) {
	var ch image.Changes
	if !c.get(diffID, changesFile(), &ch) {
		return nil, false
	}
	return &ch, true
}

func (c *Cache) getResult(diffID string, a Analyzer) (*analyzerEntry, bool) {
	var e analyzerEntry
	if !c.get(diffID, analyzerFile(a.Name(), a.Version()), &e) || e.Result == nil {
		return nil, false
	}
	return &e, true
}

// put writes one entry atomically: readers see the old file or the new
// one, never half of one.
func (c *Cache) put(diffID, file string, v any) error {
	if c == nil {
		return nil
	}
	dir, ok := c.layerDir(diffID)
	if !ok {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache %s: %w", file, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, file)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}
