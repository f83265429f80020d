// Package update refreshes the local vulnerability database: it fetches every
// source (conditional requests, verified downloads), builds a new DB file
// beside the current one and swaps it in only when everything succeeded, so a
// failed or interrupted update leaves the previous DB fully usable.
package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/fetch"
	"berth.dev/berth/internal/vulndb/ociartifact"
	"berth.dev/berth/internal/vulndb/source"
	"berth.dev/berth/internal/vulndb/source/alpine"
	"berth.dev/berth/internal/vulndb/source/debian"
	"berth.dev/berth/internal/vulndb/source/nodejs"
	"berth.dev/berth/internal/vulndb/source/osvfeed"
)

// Source spec prefixes. A spec without one is an OSV feed (URL or folder).
const (
	PrefixOSV           = "osv:"
	PrefixDebianTracker = "debian-tracker:"
	PrefixAlpineSecDB   = "alpine-secdb:"
	PrefixNodeJSWG      = "nodejs-wg:"
	PrefixOCI           = "oci://"
)

// DefaultSources is what an update reads when given none: the OSV feed,
// which carries Debian, Alpine, Ubuntu and the language ecosystems.
var DefaultSources = []string{osvfeed.DefaultBase}

// ParseSource turns one --source spec into a source:
//
//	https://mirror/osv, /srv/osv, osv:URL|PATH      OSV bulk feed; a "#npm,PyPI" suffix limits it to those ecosystems
//	debian-tracker:URL|PATH                         Debian security tracker (data/DSA/list, data/DLA/list)
//	debian-tracker:                                 … at its default location
//	alpine-secdb:URL|PATH, alpine-secdb:            Alpine secdb JSON (<branch>/<repo>.json)
//	nodejs-wg:URL|PATH                              Node.js security WG vuln.zip (npm advisories)
//
// oci:// specs are not sources but whole prebuilt DBs; see Options.
func ParseSource(spec string) (source.Source, error) {
	spec = strings.TrimSpace(spec)
	arg := func(prefix, def string) string {
		if a := strings.TrimPrefix(spec, prefix); a != "" {
			return a
		}
		return def
	}
	switch {
	case spec == "":
		return nil, errors.New("empty --source")
	case strings.HasPrefix(spec, PrefixOCI):
		return nil, fmt.Errorf("--source %s: an oci:// database cannot be mixed with other sources", spec)
	case strings.HasPrefix(spec, PrefixDebianTracker):
		return debian.New(arg(PrefixDebianTracker, debian.DefaultBase)), nil
	case strings.HasPrefix(spec, PrefixAlpineSecDB):
		return alpine.New(arg(PrefixAlpineSecDB, alpine.DefaultBase)), nil
	case strings.HasPrefix(spec, PrefixNodeJSWG):
		a := arg(PrefixNodeJSWG, "")
		if a == "" {
			return nil, errors.New("--source nodejs-wg: needs the URL or path of vuln.zip")
		}
		return nodejs.New(a), nil
	case strings.HasPrefix(spec, PrefixOSV):
		return osvFeed(arg(PrefixOSV, osvfeed.DefaultBase))
	case source.IsRemote(spec), strings.HasPrefix(spec, "file://"):
		return osvFeed(spec)
	case strings.Contains(spec, "://"):
		return nil, fmt.Errorf("--source %s: unknown scheme (want http(s)://, file://, oci:// or a prefix such as debian-tracker:)", spec)
	default:
		s, err := osvFeed(spec)
		if err != nil {
			return nil, err
		}
		if s.Base, err = filepath.Abs(s.Base); err != nil {
			return nil, fmt.Errorf("--source %s: %w", spec, err)
		}
		return s, nil
	}
}

// osvFeed reads "BASE" or "BASE#eco1,eco2".
func osvFeed(spec string) (*osvfeed.Source, error) {
	base, list, limited := strings.Cut(spec, "#")
	s := osvfeed.New(base)
	if !limited {
		return s, nil
	}
	for _, e := range strings.Split(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			s.Ecosystems = append(s.Ecosystems, e)
		}
	}
	if len(s.Ecosystems) == 0 {
		return nil, fmt.Errorf("--source %s: no ecosystems after #", spec)
	}
	return s, nil
}

// Options configure an update.
type Options struct {
	// Dir is the DB directory.
	Dir string
	// Sources are --source specs; DefaultSources when empty. A single
	// oci://REF installs the DB published there instead.
	Sources []string
	// Timeout bounds every HTTP request's wait for data (fetch.DefaultTimeout
	// when zero).
	Timeout time.Duration
	// HTTPClient is used for downloads (http.DefaultClient when nil).
	HTTPClient *http.Client
	// OCIOptions are passed to the registry client for oci:// sources.
	OCIOptions []remote.Option
	// Now stamps the new DB (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
	// OnSource, when set, hears of each source as its loading starts
	// (index from 1 of total), and OnDownload of each download (see
	// fetch.WithProgress): what a progress display needs.
	OnSource   func(name string, index, total int)
	OnDownload func(url string, size int64) func(n int64)
}

// Run updates the DB in opts.Dir and returns the Info of the new one.
func Run(ctx context.Context, opts Options) (*vulndb.Info, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = fetch.DefaultTimeout
	}
	specs := opts.Sources
	if len(specs) == 0 {
		specs = DefaultSources
	}
	var ociRef string
	var sources []source.Source
	for _, spec := range specs {
		if strings.HasPrefix(spec, PrefixOCI) {
			if len(specs) > 1 {
				return nil, fmt.Errorf("--source %s: an oci:// database cannot be mixed with other sources", spec)
			}
			ociRef = strings.TrimPrefix(spec, PrefixOCI)
			continue
		}
		s, err := ParseSource(spec)
		if err != nil {
			return nil, err
		}
		sources = append(sources, s)
	}

	ws, err := vulndb.OpenWorkspace(opts.Dir, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer ws.Close()

	if ociRef != "" {
		info, err := ociartifact.Pull(ctx, ociRef, ws, opts.OCIOptions...)
		if err != nil {
			return nil, fmt.Errorf("update failed, previous database kept: %w", err)
		}
		return info, nil
	}

	client := fetch.New(filepath.Join(opts.Dir, "cache"),
		fetch.WithTimeout(opts.Timeout),
		fetch.WithHTTPClient(httpClient(opts.HTTPClient)),
		fetch.WithUserAgent("berth-vulndb"),
		fetch.WithLogger(opts.Logger),
		fetch.WithProgress(opts.OnDownload))
	tmp, err := ws.TempPath()
	if err != nil {
		return nil, fmt.Errorf("vulnerability database directory: %w", err)
	}
	b, err := vulndb.NewBuilder(tmp)
	if err != nil {
		return nil, err
	}
	for i, s := range sources {
		start := time.Now()
		if opts.OnSource != nil {
			opts.OnSource(s.Name(), i+1, len(sources))
		}
		opts.Logger.Info("loading source", "source", s.Name())
		if err := s.Load(ctx, client, b.Sink(s.Name())); err != nil {
			b.Abort()
			return nil, fmt.Errorf("update failed, previous database kept: %w", err)
		}
		opts.Logger.Info("loaded source", "source", s.Name(), "took", time.Since(start).Round(time.Millisecond))
	}
	if !client.Changed() {
		opts.Logger.Info("no source changed since the last update")
	}
	if _, err := b.Finish(opts.Now()); err != nil {
		return nil, fmt.Errorf("update failed, previous database kept: %w", err)
	}
	// A cancellation that arrived after the last read still means the user
	// asked for no change.
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("update failed, previous database kept: %w", err)
	}
	info, err := ws.Install(tmp)
	if err != nil {
		return nil, err
	}
	if err := client.Prune(); err != nil {
		// The new DB is in place; a stale cache file only costs disk.
		opts.Logger.Warn("could not prune the download cache", "err", err)
	}
	return info, nil
}

func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return http.DefaultClient
}
