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
// only that analyzer. A layer's entries share one JSON file, written
// atomically (temporary file, then rename): a warm scan opens one file per
// layer rather than one per layer and analyzer, which on a cold process
// was a third of a warm `berth sbom`. A file that does not parse is
// ignored and rewritten on the next scan.
//
//	DIR/inventory-v2/sha256/<hex>.json
type Cache struct {
	dir string
}

// cacheFormat versions the layout above; walkerVersion versions the
// Changes the walker records.
const (
	cacheFormat   = "inventory-v2"
	walkerVersion = 2 // 2: Changes.Links
)

// obsoleteFormats are the layouts cacheFormat replaced: inventory-v1 kept
// one file per layer and analyzer.
var obsoleteFormats = []string{"inventory-v1"}

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
	// Earlier layouts are never read again; their files would only take
	// up the user's disk.
	for _, old := range obsoleteFormats {
		p := filepath.Join(dir, old)
		if _, err := os.Lstat(p); err == nil {
			if err := os.RemoveAll(p); err != nil {
				slog.Warn("removing an obsolete cache layout", "path", p, "err", err)
			}
		}
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

// layerEntry is everything cached about one layer.
type layerEntry struct {
	Walker  int            `json:"walker"`
	Changes *image.Changes `json:"changes,omitempty"`
	// Analyzers by analyzerKey. Entries of analyzers this binary does not
	// run (another version of berth sharing the cache) are kept.
	Analyzers map[string]*analyzerEntry `json:"analyzers"`
	// Probes are what the layer said of files that an analyzer's fixed
	// path leads to through symlinks, keyed "analyzerKey|fixed path|file"
	// (see followFixedPaths). A key that is absent was never asked.
	Probes map[string]*probe `json:"probes,omitempty"`
	// Passes' results by Pass.Key, kept like Analyzers.
	Passes map[string]json.RawMessage `json:"passes,omitempty"`
}

func (c *Cache) layerFile(diffID string) (string, bool) {
	alg, hexPart, ok := strings.Cut(diffID, ":")
	if !ok || alg != "sha256" || len(hexPart) != 64 || strings.ContainsAny(hexPart, "./\\") {
		return "", false
	}
	return filepath.Join(c.dir, alg, hexPart+".json"), true
}

func analyzerKey(a Analyzer) string { return fmt.Sprintf("%s-v%d", a.Name(), a.Version()) }

// layer reads the entry of one layer; nil when absent or unreadable.
func (c *Cache) layer(diffID string) *layerEntry {
	if c == nil {
		return nil
	}
	p, ok := c.layerFile(diffID)
	if !ok {
		return nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			slog.Warn("cache entry unreadable; it will be rewritten", "path", p, "err", err)
		}
		return nil
	}
	var e layerEntry
	if err := json.Unmarshal(data, &e); err != nil {
		slog.Warn("cache entry corrupt; it will be rewritten", "path", p, "err", err)
		return nil
	}
	return &e
}

// changes returns the cached walk of the layer, if the walker that wrote
// it is this one.
func (e *layerEntry) changes() (*image.Changes, bool) {
	if e == nil || e.Walker != walkerVersion || e.Changes == nil {
		return nil, false
	}
	return e.Changes, true
}

func (e *layerEntry) probe(key string) (*probe, bool) {
	if e == nil {
		return nil, false
	}
	p, ok := e.Probes[key]
	if !ok || p == nil || p.Found && (p.Entry == nil || p.Entry.Result == nil) {
		return nil, false
	}
	return p, true
}

func (e *layerEntry) result(a Analyzer) (*analyzerEntry, bool) {
	if e == nil {
		return nil, false
	}
	r, ok := e.Analyzers[analyzerKey(a)]
	if !ok || r == nil || r.Result == nil {
		return nil, false
	}
	return r, true
}

// putLayer records a fresh walk of a layer and what analyzers found in
// it, keeping the entries of other analyzers already in the file. It
// writes atomically: readers see the old file or the new one, never half
// of one. Two scans finishing the same layer at once each write a whole
// file; the loser's extra entries are recomputed by a later scan.
func (c *Cache) putLayer(diffID string, changes *image.Changes, found map[string]*analyzerEntry, passes map[string]json.RawMessage) error {
	if c == nil {
		return nil
	}
	p, ok := c.layerFile(diffID)
	if !ok {
		return nil
	}
	e := c.layer(diffID)
	if e == nil {
		e = &layerEntry{}
	}
	if e.Analyzers == nil {
		e.Analyzers = make(map[string]*analyzerEntry, len(found))
	}
	e.Walker, e.Changes = walkerVersion, changes
	for k, v := range found {
		e.Analyzers[k] = v
	}
	if len(passes) > 0 && e.Passes == nil {
		e.Passes = make(map[string]json.RawMessage, len(passes))
	}
	for k, v := range passes {
		e.Passes[k] = v
	}
	return c.write(p, diffID, e)
}

// putProbes adds probes to a layer's entry, as putLayer adds results.
func (c *Cache) putProbes(diffID string, probes map[string]*probe) error {
	if c == nil || len(probes) == 0 {
		return nil
	}
	p, ok := c.layerFile(diffID)
	if !ok {
		return nil
	}
	e := c.layer(diffID)
	if e == nil {
		e = &layerEntry{}
	}
	if e.Probes == nil {
		e.Probes = make(map[string]*probe, len(probes))
	}
	for k, v := range probes {
		e.Probes[k] = v
	}
	return c.write(p, diffID, e)
}

// write replaces the layer's entry file with e.
func (c *Cache) write(p, diffID string, e *layerEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("cache layer %s: %w", diffID, err)
	}
	dir := filepath.Dir(p)
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
		return fmt.Errorf("cache: write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}
