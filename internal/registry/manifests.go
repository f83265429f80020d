package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/access"
	"berth.dev/berth/internal/registry/event"
)

func (reg *Registry) handleManifest(q *request) error {
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		if err := reg.authorize(q, access.Pull); err != nil {
			return err
		}
		return reg.getManifest(q)
	case http.MethodPut:
		if err := reg.authorize(q, access.Push); err != nil {
			return err
		}
		return reg.putManifest(q)
	case http.MethodDelete:
		if err := reg.authorize(q, access.Delete); err != nil {
			return err
		}
		return reg.deleteManifest(q)
	}
	return methodNotAllowed(q, "GET, HEAD, PUT, DELETE")
}

// isDigestRef tells a digest reference from a tag: tags cannot hold ':'.
func isDigestRef(ref string) bool { return strings.IndexByte(ref, ':') >= 0 }

// checkReference validates a manifest reference.
func checkReference(ref string) error {
	if isDigestRef(ref) {
		if !validDigest(ref) {
			return &apiError{code: errDigestInvalid, reason: fmt.Sprintf("invalid digest %q: berth accepts sha256 and sha512", ref)}
		}
		return nil
	}
	if !validTag(ref) {
		return &apiError{code: errManifestInvalid, status: http.StatusBadRequest,
			reason: fmt.Sprintf("invalid tag %q: want [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", ref)}
	}
	return nil
}

// lookupManifest resolves a reference to a manifest through the cache.
func (reg *Registry) lookupManifest(q *request) (*servedManifest, error) {
	repo, ref := q.route.name, q.route.ref
	if err := checkReference(ref); err != nil {
		return nil, err
	}
	d := digest.Digest(ref)
	if !isDigestRef(ref) {
		cached, gen, ok := reg.cache.tag(repo, ref)
		if ok {
			d = cached
		} else {
			var err error
			d, err = reg.meta.Tag(q.ctx(), repo, ref)
			if errors.Is(err, meta.ErrTagUnknown) {
				return nil, newError(errManifestUnknown, fmt.Sprintf("manifest unknown: tag %q not found in %s", ref, repo))
			}
			if err != nil {
				return nil, err
			}
			reg.cache.putTag(repo, ref, d, gen)
		}
	}
	m, gen, ok := reg.cache.manifest(repo, d)
	if ok {
		return m, nil
	}
	stored, err := reg.meta.Manifest(q.ctx(), repo, d)
	if errors.Is(err, meta.ErrManifestUnknown) {
		return nil, newError(errManifestUnknown, fmt.Sprintf("manifest unknown: %s not found in %s", d, repo))
	}
	if err != nil {
		return nil, err
	}
	m = newServedManifest(stored)
	reg.cache.putManifest(repo, m, gen)
	return m, nil
}

func (reg *Registry) getManifest(q *request) error {
	m, err := reg.lookupManifest(q)
	if err != nil {
		return err
	}
	h := q.w.Header()
	if reg.pullPolicy != nil {
		deny, warnings := reg.pullPolicy.CheckPull(q.ctx(), q.r.Host, q.route.name, q.route.ref, m.Manifest)
		if deny != "" {
			signers, _ := reg.authz.(Signers)
			if signers == nil || !signers.MayPush(q.subject, q.route.name) {
				return &apiError{code: errDenied, reason: deny}
			}
			warnings = append([]string{deny + " (served to you because you may push to " + q.route.name + ")"}, warnings...)
		}
		for _, w := range warnings {
			h.Add("Warning", warningHeader(w))
		}
	}
	h["Content-Type"] = m.contentType
	h["Content-Length"] = m.contentLength
	h["Docker-Content-Digest"] = m.digest
	h["Etag"] = m.etag
	if match := q.r.Header.Get("If-None-Match"); match != "" && etagMatches(match, m.Digest) {
		delete(h, "Content-Length")
		delete(h, "Content-Type")
		q.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method == http.MethodGet {
		q.w.Write(m.Content)
	}
	return nil
}

// warningHeader formats a Warning header (RFC 9111: code 299, a
// persistent warning) whose text is a quoted string.
func warningHeader(text string) string {
	return "299 - " + strconv.QuoteToASCII(text)
}

// etagMatches reports whether an If-None-Match header names d.
func etagMatches(header string, d digest.Digest) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		tag = strings.TrimPrefix(tag, "W/")
		if tag == "*" || strings.Trim(tag, `"`) == string(d) {
			return true
		}
	}
	return false
}

func (reg *Registry) putManifest(q *request) error {
	repo, ref := q.route.name, q.route.ref
	if err := checkReference(ref); err != nil {
		return err
	}
	var tags []string
	if !isDigestRef(ref) {
		tags = append(tags, ref)
	}
	// Tags pushed alongside a digest reference (?tag=a&tag=b).
	for _, t := range q.r.URL.Query()["tag"] {
		if !validTag(t) {
			return &apiError{code: errManifestInvalid, reason: fmt.Sprintf("invalid tag %q", t)}
		}
		tags = append(tags, t)
	}

	body, err := reg.readManifestBody(q)
	if err != nil {
		return err
	}
	m, err := parseManifest(body, q.r.Header.Get("Content-Type"), reg.requireLayers)
	if err != nil {
		return err
	}
	m.Content = body
	if isDigestRef(ref) {
		want := digest.Digest(ref)
		m.Digest = want.Algorithm().FromBytes(body)
		if m.Digest != want {
			return &apiError{code: errDigestInvalid,
				reason: fmt.Sprintf("manifest content hashes to %s, not %s", m.Digest, want),
				detail: map[string]string{"digest": string(want)}}
		}
	} else {
		m.Digest = digest.Canonical.FromBytes(body)
	}

	err = reg.meta.PutManifest(q.ctx(), repo, m, tags)
	var missing *meta.MissingBlobsError
	if errors.As(err, &missing) {
		return missingBlobsError(missing)
	}
	if err != nil {
		return err
	}
	reg.cache.invalidate(repo, tags)
	reg.emit(q, event.Event{Kind: event.ManifestPushed, Repository: repo, Digest: m.Digest,
		MediaType: m.MediaType, ArtifactType: m.ArtifactType, Subject: m.Subject, Tags: tags})

	h := q.w.Header()
	h.Set("Location", "/v2/"+repo+"/manifests/"+m.Digest.String())
	h.Set("Docker-Content-Digest", m.Digest.String())
	if m.Subject != "" {
		h.Set("OCI-Subject", m.Subject.String())
	}
	for _, t := range tags {
		if t != ref {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusCreated)
	return nil
}

// readManifestBody reads a manifest push, refusing more than the limit
// before reading it when the client announced its length.
func (reg *Registry) readManifestBody(q *request) ([]byte, error) {
	tooBig := func(n string) error {
		return &apiError{code: errManifestInvalid, status: http.StatusRequestEntityTooLarge,
			reason: fmt.Sprintf("manifest of %s bytes exceeds the limit of %d bytes", n, reg.maxManifest)}
	}
	if q.r.ContentLength > reg.maxManifest {
		return nil, tooBig(strconv.FormatInt(q.r.ContentLength, 10))
	}
	var buf bytes.Buffer
	if q.r.ContentLength > 0 {
		buf.Grow(int(q.r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(q.r.Body, reg.maxManifest+1)); err != nil {
		return nil, &apiError{code: errManifestInvalid, reason: "reading manifest: " + err.Error()}
	}
	if int64(buf.Len()) > reg.maxManifest {
		return nil, tooBig("more than " + strconv.FormatInt(reg.maxManifest, 10))
	}
	if buf.Len() == 0 {
		return nil, newError(errManifestInvalid, "manifest invalid: empty body")
	}
	return buf.Bytes(), nil
}

func missingBlobsError(missing *meta.MissingBlobsError) error {
	message := func(d digest.Digest) string {
		if slices.Contains(missing.Collected, d) {
			return fmt.Sprintf("manifest references blob %s, which garbage collection removed from this repository "+
				"because no manifest named it within the grace period; push the blob again", d)
		}
		return fmt.Sprintf("manifest references blob %s, unknown to this repository", d)
	}
	e := &apiError{code: errManifestBlobUnknown, reason: message(missing.Digests[0]),
		detail: map[string]string{"digest": missing.Digests[0].String()}}
	for _, d := range missing.Digests[1:] {
		e.more = append(e.more, errorEntry{Code: errManifestBlobUnknown.code, Message: message(d),
			Detail: map[string]string{"digest": d.String()}})
	}
	return e
}

func (reg *Registry) deleteManifest(q *request) error {
	repo, ref := q.route.name, q.route.ref
	if err := checkReference(ref); err != nil {
		return err
	}
	if !isDigestRef(ref) {
		d, err := reg.meta.DeleteTag(q.ctx(), repo, ref)
		if errors.Is(err, meta.ErrTagUnknown) {
			return newError(errManifestUnknown, fmt.Sprintf("manifest unknown: tag %q not found in %s", ref, repo))
		}
		if err != nil {
			return err
		}
		reg.cache.invalidate(repo, []string{ref})
		reg.emit(q, event.Event{Kind: event.TagDeleted, Repository: repo, Digest: d, Tags: []string{ref}})
	} else {
		d := digest.Digest(ref)
		m, err := reg.meta.Manifest(q.ctx(), repo, d)
		if errors.Is(err, meta.ErrManifestUnknown) {
			return newError(errManifestUnknown, fmt.Sprintf("manifest unknown: %s not found in %s", d, repo))
		}
		if err != nil {
			return err
		}
		tags, err := reg.meta.DeleteManifest(q.ctx(), repo, d)
		if errors.Is(err, meta.ErrManifestUnknown) {
			return newError(errManifestUnknown, fmt.Sprintf("manifest unknown: %s not found in %s", d, repo))
		}
		if err != nil {
			return err
		}
		reg.cache.invalidate(repo, tags, d)
		reg.emit(q, event.Event{Kind: event.ManifestDeleted, Repository: repo, Digest: d,
			MediaType: m.MediaType, ArtifactType: m.ArtifactType, Subject: m.Subject, Tags: tags})
	}
	q.w.Header().Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusAccepted)
	return nil
}
