// Package inventory finds the packages inside an image: one analyzer per
// ecosystem reads the files it asks for from each layer, the results are
// cached per layer, and the layers are merged (whiteouts applied) into one
// Inventory that keeps, for every package, the layer that introduced it
// and every file it was found in; a package is listed once per purl.
//
// The types here are the one data model that the SBOM encoders, the matcher,
// the server's store and the CLI all share.
package inventory

import (
	"context"
	"io/fs"
)

// Ecosystem names a package ecosystem. The values are the purl types, so a
// package's purl type is its ecosystem.
type Ecosystem string

const (
	Deb      Ecosystem = "deb"
	APK      Ecosystem = "apk"
	RPM      Ecosystem = "rpm"
	Go       Ecosystem = "golang"
	NPM      Ecosystem = "npm"
	PyPI     Ecosystem = "pypi"
	Maven    Ecosystem = "maven"
	Gem      Ecosystem = "gem"
	Cargo    Ecosystem = "cargo"
	Composer Ecosystem = "composer"
	NuGet    Ecosystem = "nuget"
	Hex      Ecosystem = "hex"   // Elixir and Erlang (mix.lock)
	Pub      Ecosystem = "pub"   // Dart and Flutter (pubspec.lock)
	Conda    Ecosystem = "conda" // conda environments (conda-meta)
	Conan    Ecosystem = "conan" // C and C++ (conan.lock)
)

// Package is one installed or locked package.
type Package struct {
	Ecosystem Ecosystem `json:"ecosystem"`
	// Name as the ecosystem writes it: "libc6", "golang.org/x/net",
	// "@scope/name", "requests", "org.apache.commons:commons-lang3" (Maven
	// names are groupId:artifactId). The Go standard library is "stdlib".
	Name    string `json:"name"`
	Version string `json:"version"`
	// SourceName and SourceVersion are set for OS packages built from a
	// source package (dpkg Source:, rpm SOURCERPM, apk origin). They equal
	// Name and Version when the metadata names no separate source.
	SourceName    string `json:"sourceName,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	Arch          string `json:"arch,omitempty"`
	// PURL is filled in by Merge, which knows the distro.
	PURL     string   `json:"purl,omitempty"`
	Licenses []string `json:"licenses,omitempty"`
	// Locations are the files that declare the package (slash-separated,
	// absolute, e.g. "/var/lib/dpkg/status", "/app/package-lock.json").
	// After the merge, a package found in several files (node_modules and
	// the lockfile, a jar and its hard link) lists them all, in layer
	// order.
	Locations []string `json:"locations,omitempty"`
	// Layer is the diffID of the layer that introduced the package; set by
	// Merge.
	Layer string `json:"layer,omitempty"`
	// Analyzer is the Name() of the analyzer that found the package (the
	// first one, when several did).
	Analyzer string `json:"analyzer"`
	// DependsOn lists the names of the packages this one depends on, within
	// the same PackageSet (after the merge: within one of the sets it was
	// found in), where the metadata says so.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Dev marks a development-only dependency of a lockfile; after the
	// merge, a package that every finding marks so.
	Dev bool `json:"dev,omitempty"`
	// Local marks a package that does not come from its ecosystem's
	// registry: the project itself or a member of its workspace (an npm
	// workspace folder, the application a deps.json describes), or a
	// package shipped inside an SDK (Flutter's flutter_test). It is listed,
	// as the peers list it, but never matched: an advisory about a
	// registry package of the same name is not about it. After the merge,
	// a package that every finding marks so.
	Local bool `json:"local,omitempty"`
}

// Distro identifies the operating system of an image, from os-release.
type Distro struct {
	ID         string `json:"id"`                 // "debian", "alpine", "rhel", "ubuntu"
	VersionID  string `json:"versionId"`          // "12", "3.19.1", "9.4"
	Codename   string `json:"codename,omitempty"` // "bookworm"
	PrettyName string `json:"prettyName,omitempty"`
}

// PackageSet is the packages one analyzer read from one file (or directory)
// of a layer. Origin is that file's path: a later layer that rewrites or
// deletes the path replaces or removes the whole set.
type PackageSet struct {
	Origin   string    `json:"origin"` // slash-separated, no leading slash
	Packages []Package `json:"packages"`
	// InstalledUnder, set by lockfile analyzers, is the directory where
	// the lockfile's packages get installed ("app/node_modules" for
	// "app/package-lock.json"). When, after the merge, packages of the
	// same ecosystem are installed there, a lockfile entry without an
	// installed copy (same name and version) was pruned or deleted and is
	// not reported.
	InstalledUnder string `json:"installedUnder,omitempty"`
	// ShadowedBy, set by lockfile analyzers, is the path of a file that
	// the package manager reads instead of this one when it is there
	// ("app/npm-shrinkwrap.json" for "app/package-lock.json"). While the
	// same analyzer's input at that path is in the merged image (put
	// there by any layer, not removed by a later one), the set is not
	// reported; once a later layer deletes that file, it is again.
	ShadowedBy string `json:"shadowedBy,omitempty"`
}

// LicenseFile is licenses read from a file of their own rather than from
// the file that lists the package (dpkg's usr/share/doc/NAME/copyright).
// Like a PackageSet, it lives and dies with its Origin across layers; after
// the merge its licenses go to the packages of that ecosystem and name that
// carry none of their own.
type LicenseFile struct {
	Origin    string    `json:"origin"` // slash-separated, no leading slash
	Ecosystem Ecosystem `json:"ecosystem"`
	Package   string    `json:"package"`
	Licenses  []string  `json:"licenses"`
}

// Result is what one analyzer found in one layer.
type Result struct {
	// Distro is set only by the analyzers that read os-release.
	Distro   *Distro       `json:"distro,omitempty"`
	Sets     []PackageSet  `json:"sets,omitempty"`
	Licenses []LicenseFile `json:"licenses,omitempty"`
	Warns    []string      `json:"warnings,omitempty"` // skipped records, each naming file and reason
}

// Analyzer reads one ecosystem's metadata files from a layer.
//
// The scanner walks each layer once. For every regular file it asks every
// analyzer Required(path, info); the files any analyzer wants are kept
// (in memory, or spooled to a temporary file when large) and, once the layer
// is read, each analyzer gets an fs.FS holding exactly the files it asked
// for. Files opened from that FS also implement io.ReaderAt and io.Seeker,
// for formats that need random access (zip, ELF).
type Analyzer interface {
	// Name is a short stable identifier, e.g. "dpkg", "npm-lock".
	Name() string
	// Version is bumped whenever the analyzer's output for the same input
	// changes; cached layer results from other versions are then ignored.
	Version() int
	// Required reports whether the analyzer needs the file at path
	// (slash-separated, no leading slash). It must be cheap: it runs for
	// every file of every layer.
	Required(path string, info fs.FileInfo) bool
	// MaxFileBytes is the largest file the analyzer reads: a required
	// file past it is skipped, with a warning, before any of it is read
	// or spooled. A layer is untrusted; a sparse "dpkg status" of 2 GiB
	// would otherwise be copied to disk and parsed.
	MaxFileBytes() int64
	// Analyze reads the files it required. A file it cannot parse is a
	// warning in the Result, not an error; an error aborts the scan.
	// It is called only for layers that hold at least one required file,
	// and concurrently for different layers, so analyzers keep no state.
	Analyze(ctx context.Context, files fs.FS) (*Result, error)
}

// MaxLockfileBytes is the MaxFileBytes of the analyzers of lockfiles and
// package manifests: several times the largest real ones (a monorepo's
// package-lock.json reaches tens of MiB), each parsed in memory.
const MaxLockfileBytes = 64 << 20

// Layer describes one layer of an image as the inventory needs it.
type Layer struct {
	DiffID    string `json:"diffId"`
	Digest    string `json:"digest,omitempty"`
	Size      int64  `json:"size,omitempty"`
	CreatedBy string `json:"createdBy,omitempty"`
}

// Inventory is everything found in one image, after merging its layers.
// No two of its packages share a purl.
type Inventory struct {
	// Source is how the image was named by the user (a reference or a path).
	Source string `json:"source"`
	// Digest is the manifest digest, when the image came from a manifest.
	Digest       string    `json:"digest,omitempty"`
	ConfigDigest string    `json:"configDigest,omitempty"`
	OS           string    `json:"os,omitempty"`
	Architecture string    `json:"architecture,omitempty"`
	Distro       *Distro   `json:"distro,omitempty"`
	Layers       []Layer   `json:"layers"`
	Packages     []Package `json:"packages"`
	Warnings     []string  `json:"warnings,omitempty"`
}
