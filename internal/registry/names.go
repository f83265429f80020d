package registry

import (
	"strings"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
)

// validTag reports whether s matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func validTag(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		word := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
		if !word && (i == 0 || (c != '.' && c != '-')) {
			return false
		}
	}
	return true
}

// validDigest reports whether s is a digest this registry accepts: sha256 or
// sha512 in canonical lowercase hex.
func validDigest(s string) bool { return blob.Supported(digest.Digest(s)) }

// routeKind names the endpoints of the distribution API.
type routeKind int

const (
	routeUnknown     routeKind = iota
	routeBase                  // /v2/
	routeCatalog               // /v2/_catalog
	routeTags                  // /v2/<name>/tags/list
	routeManifest              // /v2/<name>/manifests/<reference>
	routeBlob                  // /v2/<name>/blobs/<digest>
	routeUploadStart           // /v2/<name>/blobs/uploads/
	routeUpload                // /v2/<name>/blobs/uploads/<id>
	routeReferrers             // /v2/<name>/referrers/<digest>
)

var routeNames = [...]string{
	routeUnknown:     "unknown",
	routeBase:        "base",
	routeCatalog:     "catalog",
	routeTags:        "tags",
	routeManifest:    "manifest",
	routeBlob:        "blob",
	routeUploadStart: "upload_start",
	routeUpload:      "upload",
	routeReferrers:   "referrers",
}

func (k routeKind) String() string { return routeNames[k] }

// route is a parsed request path. name and ref are not validated yet.
type route struct {
	kind routeKind
	name string
	ref  string
}

// parseRoute splits a request path into endpoint, repository name and
// reference. Repository names contain slashes, so the endpoint is found
// from the right. The result is syntactic only; names and references are
// validated by the handlers so that each gets its own error code.
func parseRoute(path string) route {
	p, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return route{kind: routeBase}
		}
		return route{}
	}
	switch p {
	case "":
		return route{kind: routeBase}
	case "_catalog":
		return route{kind: routeCatalog}
	}
	if name, ok := strings.CutSuffix(p, "/tags/list"); ok {
		return route{kind: routeTags, name: name}
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads/"); ok {
		return route{kind: routeUploadStart, name: name}
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads"); ok {
		return route{kind: routeUploadStart, name: name}
	}
	slash := strings.LastIndexByte(p, '/')
	if slash < 0 {
		return route{}
	}
	rest, ref := p[:slash], p[slash+1:]
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads"); ok {
		return route{kind: routeUpload, name: name, ref: ref}
	}
	slash = strings.LastIndexByte(rest, '/')
	if slash < 0 {
		return route{}
	}
	name, endpoint := rest[:slash], rest[slash+1:]
	switch endpoint {
	case "manifests":
		return route{kind: routeManifest, name: name, ref: ref}
	case "blobs":
		return route{kind: routeBlob, name: name, ref: ref}
	case "referrers":
		return route{kind: routeReferrers, name: name, ref: ref}
	}
	return route{}
}

// RouteName names the endpoint a request path addresses, for metrics and
// logs: one of base, catalog, tags, manifest, blob, upload_start, upload,
// referrers, or unknown.
func RouteName(path string) string { return parseRoute(path).kind.String() }

// RouteOf is RouteName with the repository and reference (tag, digest or
// upload id) the path names, unvalidated, for the audit log.
func RouteOf(path string) (route, repository, reference string) {
	rt := parseRoute(path)
	return rt.kind.String(), rt.name, rt.ref
}
