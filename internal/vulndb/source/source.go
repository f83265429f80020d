// Package source defines what a vulnerability source is: a unit that fetches
// one upstream feed and converts its records to the OSV model. Each feed lives
// in its own sub-package (osvfeed, debian, alpine, nodejs); the update logic
// drives them all through this interface and the shared test suite in
// vulndbtest holds every one of them to the same contract.
package source

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/osv"
)

// ErrNotFound is returned by a Fetcher when the upstream has no such file
// (HTTP 404, or a missing local file). Sources decide whether that is fatal.
var ErrNotFound = errors.New("not found")

// Source is one upstream feed of vulnerability records.
type Source interface {
	// Name identifies the source in status output and logs, e.g.
	// "osv https://osv-vulnerabilities.storage.googleapis.com".
	Name() string
	// Load fetches the feed through f and hands every record to sink.
	// A record the source cannot convert is reported with sink.Skip and the
	// load goes on; an unreadable or corrupt download fails the load.
	Load(ctx context.Context, f Fetcher, sink Sink) error
}

// Sink receives a source's records.
type Sink interface {
	// Add imports one record. The sink owns it afterwards.
	Add(v *osv.Vulnerability) error
	// Skip counts a record (or part of one) the source had to leave out;
	// id may be empty when the record could not even be identified.
	Skip(id, reason string)
}

// Fetcher brings upstream files to the local disk.
type Fetcher interface {
	// Fetch returns the path of a local file holding the content at loc,
	// which is an http(s) URL or a local path (file:// URLs too). The file
	// stays valid until the update ends.
	Fetch(ctx context.Context, loc string) (string, error)
}

// IsRemote reports whether loc is fetched over HTTP.
func IsRemote(loc string) bool {
	return strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://")
}

// LocalPath turns a file:// URL into a path and leaves anything else as is.
func LocalPath(loc string) string {
	if u, err := url.Parse(loc); err == nil && u.Scheme == "file" {
		return filepath.FromSlash(u.Path)
	}
	return loc
}

// Join appends path elements to a base location: URL elements are escaped
// (ecosystem names such as "Red Hat" hold spaces), local ones are joined as
// file paths.
func Join(base string, elem ...string) string {
	if !IsRemote(base) {
		return filepath.Join(append([]string{LocalPath(base)}, elem...)...)
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(base, "/"))
	for _, e := range elem {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(e))
	}
	return b.String()
}
