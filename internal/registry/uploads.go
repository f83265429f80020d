package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/access"
)

// maxMountCandidates bounds how many repositories holding a blob an
// anonymous mount looks through for one the caller may read.
const maxMountCandidates = 64

func (reg *Registry) handleUploadStart(q *request) error {
	if q.r.Method != http.MethodPost {
		return methodNotAllowed(q, "POST")
	}
	if err := reg.authorize(q, access.Push); err != nil {
		return err
	}
	query := q.r.URL.Query()
	if mount := query.Get("mount"); mount != "" {
		mounted, err := reg.mount(q, mount, query.Get("from"))
		if err != nil || mounted {
			return err
		}
		// The spec's fallback: a mount that cannot be done starts an
		// ordinary upload.
	}
	if d := query.Get("digest"); d != "" {
		release, err := reg.uploads.acquire(account(q))
		if err != nil {
			return err
		}
		defer release()
		return reg.monolithicUpload(q, d)
	}
	return reg.startSession(q)
}

// mount links an existing blob into the request's repository. With from,
// the blob must be readable there. Without from (an anonymous mount), any
// repository holding it that the caller may pull from will do: the caller
// could download the blob and push it anyway, so this saves a transfer and
// reveals nothing the caller could not read. A mount that cannot be done
// reports false and no error.
func (reg *Registry) mount(q *request, ref, from string) (bool, error) {
	if !validDigest(ref) {
		return false, nil
	}
	d := digest.Digest(ref)
	repo := q.route.name
	var sources []string
	if from != "" {
		if !access.ValidRepository(from) {
			return false, nil
		}
		sources = []string{from}
	} else {
		var err error
		if sources, err = reg.meta.BlobRepositories(q.ctx(), d, maxMountCandidates); err != nil {
			return false, err
		}
	}
	for _, src := range sources {
		// Denied or unauthenticated on the source: fall back to an
		// upload rather than tell the caller the blob exists there.
		if reg.authz.Authorize(q.ctx(), q.subject, access.Request{Repository: src, Action: access.MountSource}) != nil {
			continue
		}
		if _, err := reg.meta.MountBlob(q.ctx(), src, repo, d); errors.Is(err, meta.ErrBlobUnknown) {
			continue
		} else if err != nil {
			return false, err
		}
		blobCreated(q, d)
		return true, nil
	}
	return false, nil
}

func blobCreated(q *request, d digest.Digest) {
	h := q.w.Header()
	h.Set("Location", "/v2/"+q.route.name+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusCreated)
}

// clientBody remembers whether reading the request body failed, to tell a
// client that went away from a storage failure.
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func interrupted(err error) error {
	return &apiError{code: errBlobUploadInvalid, reason: "upload interrupted: " + err.Error()}
}

func digestMismatch(err error, d digest.Digest) error {
	return &apiError{code: errDigestInvalid, reason: err.Error(), detail: map[string]string{"digest": d.String()}}
}

// monolithicUpload stores a whole blob sent with POST ?digest=.
func (reg *Registry) monolithicUpload(q *request, ref string) error {
	d, err := blobDigest(ref)
	if err != nil {
		return err
	}
	// Claim the digest before its content lands, so that garbage
	// collection cannot delete the file between commit and link. The
	// claim records no size: the body may be a lie, and the digest may
	// be another repository's blob.
	if err := reg.meta.TouchBlob(q.ctx(), d); err != nil {
		return err
	}
	body := &clientBody{r: q.r.Body}
	n, err := reg.blobs.Put(q.ctx(), d, body)
	switch {
	case errors.Is(err, blob.ErrDigestMismatch):
		return digestMismatch(err, d)
	case err != nil && body.err != nil:
		return interrupted(body.err)
	case err != nil:
		return err
	}
	if err := reg.meta.LinkBlob(q.ctx(), q.route.name, d, n); err != nil {
		return err
	}
	if err := reg.confirmContent(q, d); err != nil {
		return err
	}
	blobCreated(q, d)
	return nil
}

// confirmContent checks, after linking, that the blob's content is still
// there. The link protects it from garbage collection from now on; before,
// only the claim made by TouchBlob did, and a claim older than the grace
// period (a push stalled that long) may have lost to a collection.
func (reg *Registry) confirmContent(q *request, d digest.Digest) error {
	_, err := reg.blobs.Stat(q.ctx(), d)
	if errors.Is(err, blob.ErrNotFound) {
		return errors.Join(&apiError{code: errBlobUploadInvalid, status: http.StatusServiceUnavailable,
			reason: "the blob was garbage-collected while this push stalled; push it again"},
			reg.meta.UnlinkBlob(q.ctx(), q.route.name, d))
	}
	return err
}

func (reg *Registry) startSession(q *request) error {
	up, err := reg.blobs.NewUpload(q.ctx())
	if err != nil {
		return err
	}
	err = reg.meta.CreateUpload(q.ctx(), meta.Upload{ID: up.ID(), Repository: q.route.name, Account: account(q), StartedAt: time.Now()},
		reg.sessionLimit)
	var tooMany *meta.TooManyUploadsError
	if errors.As(err, &tooMany) {
		return errors.Join(tooManySessions(tooMany), up.Cancel(q.ctx()))
	}
	if err != nil {
		return errors.Join(err, up.Cancel(q.ctx()))
	}
	if err := up.Close(); err != nil {
		return err
	}
	uploadStatus(q, up.ID(), 0, http.StatusAccepted)
	return nil
}

// uploadStatus writes the headers that describe an upload session.
func uploadStatus(q *request, id string, size int64, status int) {
	h := q.w.Header()
	h.Set("Location", "/v2/"+q.route.name+"/blobs/uploads/"+id)
	h.Set("Range", rangeHeader(size))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Blob-Upload-Session-ID", id)
	h.Set("Content-Length", "0")
	q.w.WriteHeader(status)
}

// rangeHeader is the inclusive range of bytes received. An empty upload is
// "0-0", as distribution answers and clients expect.
func rangeHeader(size int64) string {
	if size == 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}

func (reg *Registry) handleUpload(q *request) error {
	switch q.r.Method {
	case http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return methodNotAllowed(q, "GET, PATCH, PUT, DELETE")
	}
	if err := reg.authorize(q, access.Push); err != nil {
		return err
	}
	if q.r.Method == http.MethodPatch || q.r.Method == http.MethodPut {
		release, err := reg.uploads.acquire(account(q))
		if err != nil {
			return err
		}
		defer release()
	}
	id := q.route.ref
	unlock := reg.sessions.lock(id)
	defer unlock()
	unknown := &apiError{code: errBlobUploadUnknown, reason: fmt.Sprintf("upload %q unknown to %s", id, q.route.name)}
	session, err := reg.meta.Upload(q.ctx(), id)
	if errors.Is(err, meta.ErrUploadUnknown) {
		return unknown
	}
	if err != nil {
		return err
	}
	if session.Repository != q.route.name {
		return unknown
	}
	up, err := reg.blobs.ResumeUpload(q.ctx(), id)
	if errors.Is(err, blob.ErrUploadNotFound) {
		// Its content is gone (expired, or a crash after commit): the
		// session cannot be finished.
		return errors.Join(unknown, reg.meta.DeleteUpload(q.ctx(), id))
	}
	if err != nil {
		return err
	}
	defer up.Close()
	switch q.r.Method {
	case http.MethodGet:
		uploadStatus(q, id, up.Size(), http.StatusNoContent)
		return nil
	case http.MethodDelete:
		if err := up.Cancel(q.ctx()); err != nil {
			return err
		}
		if err := reg.meta.DeleteUpload(q.ctx(), id); err != nil {
			return err
		}
		q.w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch:
		if err := reg.appendChunk(q, up); err != nil {
			return err
		}
		uploadStatus(q, id, up.Size(), http.StatusAccepted)
		return nil
	}
	return reg.finishUpload(q, up)
}

// appendChunk appends the request body to the upload, checking that a
// Content-Range, if given, starts where the upload ends.
func (reg *Registry) appendChunk(q *request, up blob.Upload) error {
	want := int64(-1)
	if cr := q.r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || start != up.Size() {
			e := &apiError{code: errBlobUploadInvalid, status: http.StatusRequestedRangeNotSatisfiable,
				reason: fmt.Sprintf("Content-Range %q does not continue the upload, which holds %d bytes", cr, up.Size()),
				header: http.Header{
					"Location":           {"/v2/" + q.route.name + "/blobs/uploads/" + up.ID()},
					"Range":              {rangeHeader(up.Size())},
					"Docker-Upload-Uuid": {up.ID()},
				}}
			return e
		}
		want = end - start + 1
		if q.r.ContentLength >= 0 && q.r.ContentLength != want {
			return &apiError{code: errSizeInvalid,
				reason: fmt.Sprintf("Content-Range %q is %d bytes but Content-Length is %d", cr, want, q.r.ContentLength)}
		}
	}
	var r io.Reader = q.r.Body
	if want >= 0 {
		r = io.LimitReader(r, want)
	}
	n, err := up.ReadFrom(r)
	if err != nil {
		return interrupted(err)
	}
	if want >= 0 && n != want {
		return &apiError{code: errSizeInvalid, reason: fmt.Sprintf("chunk ended after %d of %d bytes", n, want)}
	}
	return nil
}

// parseContentRange reads "<start>-<end>", also in the forms clients derive
// from HTTP's Content-Range ("bytes <start>-<end>/<total>", "bytes=…").
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "bytes=")
	s = strings.TrimPrefix(s, "bytes ")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// finishUpload appends an optional last chunk, verifies the digest and makes
// the blob readable from the repository.
func (reg *Registry) finishUpload(q *request, up blob.Upload) error {
	digests := q.r.URL.Query()["digest"]
	if len(digests) == 0 {
		return newError(errDigestInvalid, "the digest query parameter is required to finish an upload")
	}
	d, err := blobDigest(digests[0])
	if err != nil {
		return err
	}
	if q.r.ContentLength != 0 || q.r.Header.Get("Content-Range") != "" {
		if err := reg.appendChunk(q, up); err != nil {
			return err
		}
	}
	if err := reg.meta.TouchBlob(q.ctx(), d); err != nil {
		return err
	}
	n, err := up.Commit(q.ctx(), d)
	if errors.Is(err, blob.ErrDigestMismatch) {
		// A wrong digest ends the session and keeps nothing.
		return errors.Join(digestMismatch(err, d), up.Cancel(q.ctx()), reg.meta.DeleteUpload(q.ctx(), up.ID()))
	}
	if err != nil {
		return err
	}
	if err := reg.meta.LinkUploadedBlob(q.ctx(), up.ID(), d, n); err != nil {
		return err
	}
	if err := reg.confirmContent(q, d); err != nil {
		return err
	}
	blobCreated(q, d)
	return nil
}
