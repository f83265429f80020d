package registry

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/access"
)

func (reg *Registry) handleBlob(q *request) error {
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		if err := reg.authorize(q, access.Pull); err != nil {
			return err
		}
		return reg.getBlob(q)
	case http.MethodDelete:
		if err := reg.authorize(q, access.Delete); err != nil {
			return err
		}
		return reg.deleteBlob(q)
	}
	return methodNotAllowed(q, "GET, HEAD, DELETE")
}

func blobDigest(ref string) (digest.Digest, error) {
	if !validDigest(ref) {
		return "", &apiError{code: errDigestInvalid, reason: fmt.Sprintf("invalid digest %q: berth accepts sha256 and sha512", ref)}
	}
	return digest.Digest(ref), nil
}

func blobUnknown(d digest.Digest, repo string) error {
	return &apiError{code: errBlobUnknown, reason: fmt.Sprintf("blob %s unknown to %s", d, repo),
		detail: map[string]string{"digest": d.String()}}
}

func (reg *Registry) getBlob(q *request) error {
	repo := q.route.name
	d, err := blobDigest(q.route.ref)
	if err != nil {
		return err
	}
	size, err := reg.meta.BlobSize(q.ctx(), repo, d)
	if errors.Is(err, meta.ErrBlobUnknown) {
		// Manifests are content too: serve one asked for by digest on
		// the blobs endpoint, as distribution does.
		if m, merr := reg.meta.Manifest(q.ctx(), repo, d); merr == nil {
			return serveBytes(q, d, m.Content)
		}
		return blobUnknown(d, repo)
	}
	if err != nil {
		return err
	}
	h := q.w.Header()
	h["Docker-Content-Digest"] = []string{d.String()}
	h["Etag"] = []string{`"` + d.String() + `"`}
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Accept-Ranges"] = []string{"bytes"}
	// Content addressed: it never changes.
	h["Cache-Control"] = []string{"max-age=31536000, immutable"}
	if q.r.Method == http.MethodHead {
		// A store whose Stat is a network round trip (S3) is not asked:
		// the recorded size is of verified content, and fsck finds
		// content gone missing.
		if !reg.metaExistence {
			if _, err := reg.blobs.Stat(q.ctx(), d); err != nil {
				return reg.missingContent(q, d, err)
			}
		}
		h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
		q.w.WriteHeader(http.StatusOK)
		return nil
	}
	if reg.redirector != nil {
		u, err := reg.redirector.RedirectURL(q.ctx(), d, blobRedirectExpiry)
		if err != nil {
			return err
		}
		// The URL is good for a while; the redirect itself is the
		// authorized caller's alone.
		h["Cache-Control"] = []string{"no-store"}
		h["Location"] = []string{u}
		q.w.WriteHeader(http.StatusTemporaryRedirect)
		return nil
	}
	content, _, err := reg.blobs.Open(q.ctx(), d)
	if err != nil {
		return reg.missingContent(q, d, err)
	}
	defer content.Close()
	// ServeContent answers Range, If-Range and If-None-Match; given an
	// *os.File its copy to the connection becomes sendfile, which costs the
	// server about a quarter less CPU per byte than read+write. To a
	// loopback client, though, sendfile measured ~30% slower than plain
	// writes (the socket buffer fills and every refill waits on the poller;
	// bench/registry.sh and docs/benchmarks.md), so local clients — CI
	// runners and proxies on the same host — get the copy loop instead.
	if fromLoopback(q.r) {
		http.ServeContent(struct{ http.ResponseWriter }{q.w}, q.r, "", time.Time{}, struct{ io.ReadSeeker }{content})
		return nil
	}
	http.ServeContent(q.w, q.r, "", time.Time{}, content)
	return nil
}

// blobRedirectExpiry is how long a redirect's URL serves the blob: long
// enough to start a slow download (S3 checks the time when it starts).
const blobRedirectExpiry = 20 * time.Minute

// fromLoopback reports whether the request's peer is on the loopback
// interface.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// missingContent answers a blob the meta store lists but the blob store
// lacks: fsck material, logged loudly, answered as unknown.
func (reg *Registry) missingContent(q *request, d digest.Digest, err error) error {
	if errors.Is(err, blob.ErrNotFound) {
		reg.log.ErrorContext(q.ctx(), "blob recorded but its content is missing; run berth fsck",
			"repository", q.route.name, "digest", d)
		return blobUnknown(d, q.route.name)
	}
	return err
}

func serveBytes(q *request, d digest.Digest, content []byte) error {
	h := q.w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(content)))
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method == http.MethodGet {
		q.w.Write(content)
	}
	return nil
}

func (reg *Registry) deleteBlob(q *request) error {
	repo := q.route.name
	d, err := blobDigest(q.route.ref)
	if err != nil {
		return err
	}
	// The content stays until garbage collection finds no repository
	// linking it and no manifest naming it.
	if err := reg.meta.UnlinkBlob(q.ctx(), repo, d); errors.Is(err, meta.ErrBlobUnknown) {
		return blobUnknown(d, repo)
	} else if err != nil {
		return err
	}
	q.w.Header().Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusAccepted)
	return nil
}
