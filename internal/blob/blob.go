// Package blob is berth's content-addressed blob store: layers, configs and
// other blobs, named by their digest. Manifests are not stored here; they
// live with the rest of the metadata in internal/meta.
//
// A blob becomes visible only once its content has been verified against its
// digest, so a reader never sees a partial or corrupt blob. Content arrives
// through an Upload, which may span many requests and survives a restart of
// the process.
package blob

import (
	"context"
	// The hash functions go-digest looks up for sha256 and sha512 digests.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors returned by every Store implementation; test them with errors.Is.
var (
	// ErrNotFound means no blob with that digest is stored.
	ErrNotFound = errors.New("blob not found")
	// ErrUploadNotFound means no upload with that ID exists.
	ErrUploadNotFound = errors.New("blob upload not found")
	// ErrDigestMismatch means the content does not hash to the expected digest.
	ErrDigestMismatch = errors.New("content does not match digest")
	// ErrUnsupportedDigest means the digest is malformed or its algorithm is
	// not one the store accepts (sha256 and sha512).
	ErrUnsupportedDigest = errors.New("unsupported digest")
)

// Info describes a stored blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// UploadInfo describes an unfinished upload.
type UploadInfo struct {
	ID      string
	Size    int64
	ModTime time.Time // last time content was appended
}

// Store is a content-addressed blob store. Implementations are safe for
// concurrent use.
type Store interface {
	// Stat returns the blob's size, or ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (Info, error)
	// Open returns the blob's content and size, or ErrNotFound. The
	// filesystem implementation returns an *os.File so that serving it can
	// use sendfile.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
	// Put stores the content read from r as blob d, verifying it while
	// streaming. On ErrDigestMismatch nothing is stored.
	Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error)
	// Delete removes the blob, or returns ErrNotFound.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every stored blob, in no particular order. An error
	// from fn stops the walk and is returned.
	Walk(ctx context.Context, fn func(Info) error) error

	// NewUpload starts an empty upload.
	NewUpload(ctx context.Context) (Upload, error)
	// ResumeUpload reopens an unfinished upload, also after a restart, or
	// returns ErrUploadNotFound.
	ResumeUpload(ctx context.Context, id string) (Upload, error)
	// WalkUploads calls fn for every unfinished upload.
	WalkUploads(ctx context.Context, fn func(UploadInfo) error) error
	// StatUpload describes one unfinished upload, or returns
	// ErrUploadNotFound.
	StatUpload(ctx context.Context, id string) (UploadInfo, error)
	// RemoveUpload discards an unfinished upload, also one left half-created
	// by a crash. Removing an unknown upload is not an error.
	RemoveUpload(ctx context.Context, id string) error
}

// Upload is content being written towards a blob. An Upload value is not safe
// for concurrent use; the caller serialises requests on one upload ID.
type Upload interface {
	// ID names the upload for ResumeUpload.
	ID() string
	// Size is the number of bytes written so far.
	Size() int64
	// Write appends to the upload.
	io.Writer
	// ReadFrom appends everything read from r and returns the count even
	// when r fails part-way; the bytes that arrived stay in the upload.
	io.ReaderFrom
	// Commit verifies that the content hashes to d and makes it the blob d.
	// It returns the blob's size. On ErrDigestMismatch the upload is left as
	// it was and the caller decides whether to Cancel it. After a successful
	// Commit the Upload is finished.
	Commit(ctx context.Context, d digest.Digest) (int64, error)
	// Cancel discards the upload and its content.
	Cancel(ctx context.Context) error
	// Close releases resources and keeps the content for a later resume.
	Close() error
}

// Supported reports whether d is a well-formed digest with an algorithm blob
// stores accept: sha256 or sha512, lowercase hex of the right length. It is
// on every request's path, so it checks by hand rather than with go-digest's
// regular expressions.
func Supported(d digest.Digest) bool {
	s := string(d)
	var n int
	switch {
	case strings.HasPrefix(s, "sha256:"):
		s, n = s[len("sha256:"):], 64
	case strings.HasPrefix(s, "sha512:"):
		s, n = s[len("sha512:"):], 128
	default:
		return false
	}
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// MetaExistence is implemented by stores whose Stat is a network round
// trip (S3): whether a blob exists, and its size, are to be answered from
// the meta store, which records both once content is verified, rather
// than asked of the store on every request.
type MetaExistence interface {
	ExistenceFromMeta() bool
}

// Redirector is implemented by stores whose content a client can fetch
// directly (S3): RedirectURL returns a URL that serves blob d for a
// while, signed so that it needs no credentials of the client's.
type Redirector interface {
	RedirectURL(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error)
}

// BatchDeleter is implemented by stores that delete many blobs in few
// requests (S3's DeleteObjects). DeleteMany counts a blob already gone as
// deleted and returns those whose deletion failed, with the first error.
type BatchDeleter interface {
	DeleteMany(ctx context.Context, ds []digest.Digest) (failed []digest.Digest, err error)
}

// IncompleteUploads is implemented by stores that may leave incomplete
// multipart uploads behind when a process dies mid-commit (S3): invisible
// and harmless, but they take space until aborted.
type IncompleteUploads interface {
	AbortIncompleteUploads(ctx context.Context, before time.Time) (int, error)
}
